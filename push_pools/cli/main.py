"""`push-pools`: the command-line interface.

Only typer is imported at start; every command imports what it needs when it runs, so
`push-pools --help` stays fast and never loads a cloud SDK.
"""

from __future__ import annotations

import copy
import importlib
import sys
from typing import Any

import typer

from push_pools.cli.help import HelpGroup

# Each command group's module, and its typer app or command. Only the group a command line
# names is imported (all of them for top-level help or an unknown name): `server start` then
# never loads the other groups' modules, about 2 MiB of an idle server's memory.
GROUPS = {
    "server": ("push_pools.cli.server", "app"),
    "work-pool": ("push_pools.cli.work_pool", "app"),
    "work-queue": ("push_pools.cli.work_queue", "app"),
    "worker": ("push_pools.cli.worker", "app"),
    "deployment": ("push_pools.cli.deployment", "app"),
    "flow-run": ("push_pools.cli.flow_run", "app"),
    "block": ("push_pools.cli.block", "app"),
}
COMMANDS = {
    "deploy": ("push_pools.cli.deploy", "deploy"),
    "demo": ("push_pools.cli.demo", "demo"),
}
# The command list of `push-pools --help`, in its order, so that the top-level help imports no
# command module (~40 ms: work-pool's flags come from the provisioners' entry points).
# tests/test_cli_basics.py checks each line against the summary its module gives.
SUMMARIES = {
    "deploy": "Create or update deployments: a flow, a work pool, parameters, and schedules.",
    "demo": "Start a temporary server; run the example flow through a process pool with a "
    "worker, then through a managed pool that needs no worker; print results and logs; "
    "clean up.",
    "server": "Run the API server.",
    "work-pool": "Create and manage work pools.",
    "work-queue": "Create and manage the work queues of a pool.",
    "worker": "Start a worker that runs a pool's flow runs here.",
    "deployment": "Inspect and run deployments.",
    "flow-run": "Inspect flow runs and their logs.",
    "block": "Store credentials and other configuration blocks.",
}


class RootGroup(HelpGroup):
    """With no command named, no command is loaded: the help lists them from SUMMARIES."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        if self.commands:
            super().format_commands(ctx, formatter)
            return
        with formatter.section("Commands"):
            formatter.write_dl(list(SUMMARIES.items()))


def build_app(argv: list[str]) -> typer.Typer:
    """The CLI with the command group `argv` names, or with all of them."""
    app = typer.Typer(
        cls=RootGroup,
        name="push-pools",
        help="Run flows on your own infrastructure: work pools, deployments, flow runs, workers.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Plain click help: rendering it with rich (typer's default) doubles `--help`'s time.
        # Every group sets the same.
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root_options)
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    if named is None:
        # Help, --version or a usage error: the root alone answers them.
        wanted: set[str] = set()
    elif named in GROUPS:
        wanted = {named}
    elif named in COMMANDS:
        # Both: with a single command and no group, typer would make it the whole CLI.
        wanted = set(COMMANDS)
    else:
        wanted = set(GROUPS) | set(COMMANDS)
    for name, (module, attribute) in GROUPS.items():
        if name in wanted:
            group = getattr(importlib.import_module(module), attribute)
            app.add_typer(_only_the_named_command(group, argv, name), name=name)
    for name, (module, attribute) in COMMANDS.items():
        if name in wanted:
            command = getattr(importlib.import_module(module), attribute)
            _add_provision_flags(command)
            app.command(name)(command)
    return app


def _only_the_named_command(group: typer.Typer, argv: list[str], name: str) -> typer.Typer:
    """`group` with only the command that `argv` names after `name`, when it names one of
    them: typer builds every command of a group, and some are costly to build (those with
    provisioning flags). Otherwise (the group's help, an unknown command) the whole group."""
    from typer.main import get_command_name

    after = argv[argv.index(name) + 1 :] if name in argv else []
    wanted = next((arg for arg in after if not arg.startswith("-")), None)

    def command_name(info: Any) -> str:
        return str(info.name or get_command_name(info.callback.__name__))

    chosen = [info for info in group.registered_commands if command_name(info) == wanted]
    if chosen and not group.registered_groups:
        group = copy.copy(group)
        group.registered_commands = chosen
    for info in group.registered_commands:
        _add_provision_flags(info.callback)
    return group


def _add_provision_flags(command: Any) -> None:
    from push_pools.cli.provision_flags import add_provision_flags

    add_provision_flags(command)


def _show_version(value: bool) -> None:
    if value:
        from push_pools import __version__

        print(f"push-pools {__version__}")
        raise typer.Exit()


def _root_options(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        help="Print push-pools' version and exit.",
        is_eager=True,
        callback=_show_version,
    ),
) -> None:
    """Run flows on your own infrastructure: work pools, deployments, flow runs, workers."""


def run(argv: list[str] | None = None) -> None:
    """Console-script entry: user errors become one red line and exit code 1, no traceback."""
    from push_pools.errors import PushPoolsError

    args = sys.argv[1:] if argv is None else argv
    try:
        code = build_app(args)(args=args, prog_name="push-pools", standalone_mode=False)
    except PushPoolsError as exc:
        if "--json" in args:
            _print_json_error(exc.message, _error_code(type(exc).__name__))
        else:
            _print_error(exc.message)
        sys.exit(1)
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors (unknown command, bad option value) come from the click that typer
        # bundles; they carry `show()` and `exit_code`, whichever click module raised them.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            if "--json" in args and hasattr(exc, "format_message"):
                _print_json_error(exc.format_message(), "usage")
            else:
                exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            _print_error("aborted")
            sys.exit(1)
        raise
    # In non-standalone mode `raise typer.Exit(n)` comes back as the return value.
    if isinstance(code, int) and code:
        sys.exit(code)


def _error_code(class_name: str) -> str:
    """NotFound -> "not_found": the stable `code` of a --json error."""
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


def _print_json_error(message: str, code: str) -> None:
    """With --json, scripts read errors from stdout as they read results."""
    import json

    print(json.dumps({"error": message, "code": code}))


def _print_error(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[red]Error:[/red] {message}", markup=True
    )


if __name__ == "__main__":
    run()
