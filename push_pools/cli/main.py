"""`push-pools`: the command-line interface.

Only typer is imported at start; every command imports what it needs when it runs, so
`push-pools --help` stays fast and never loads a cloud SDK.
"""

from __future__ import annotations

import sys

import typer

from push_pools.cli import block, deployment, flow_run, server, work_pool, work_queue, worker
from push_pools.cli.demo import demo
from push_pools.cli.deploy import deploy

app = typer.Typer(
    name="push-pools",
    help="Run flows on your own infrastructure: work pools, deployments, flow runs, workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rendering it with rich (typer's default) doubles `--help`'s time. Every
    # group sets the same.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(server.app, name="server")
app.add_typer(work_pool.app, name="work-pool")
app.add_typer(work_queue.app, name="work-queue")
app.add_typer(worker.app, name="worker")
app.add_typer(deployment.app, name="deployment")
app.add_typer(flow_run.app, name="flow-run")
app.add_typer(block.app, name="block")


app.command("deploy")(deploy)
app.command("demo")(demo)


def run(argv: list[str] | None = None) -> None:
    """Console-script entry: user errors become one red line and exit code 1, no traceback."""
    from push_pools.errors import PushPoolsError

    try:
        code = app(args=argv, prog_name="push-pools", standalone_mode=False)
    except PushPoolsError as exc:
        _print_error(exc.message)
        sys.exit(1)
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors (unknown command, bad option value) come from the click that typer
        # bundles; they carry `show()` and `exit_code`, whichever click module raised them.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            _print_error("aborted")
            sys.exit(1)
        raise
    # In non-standalone mode `raise typer.Exit(n)` comes back as the return value.
    if isinstance(code, int) and code:
        sys.exit(code)


def _print_error(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[red]Error:[/red] {message}", markup=True
    )


if __name__ == "__main__":
    run()
