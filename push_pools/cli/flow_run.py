"""`push-pools flow-run`: list, inspect, watch, cancel and delete runs, and read their logs."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from push_pools.cli.help import HelpGroup

app = typer.Typer(
    cls=HelpGroup,
    help="Inspect flow runs and their logs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

IdArg = Annotated[str, typer.Argument(help="Flow run id, name, or a unique prefix of the id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable fields) for scripts.")]
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _client() -> Any:
    from push_pools.client import Client

    return Client(stdlib_http=True)


def format_log(entry: dict[str, Any]) -> str:
    from push_pools.cli.output import short_time

    return f"{short_time(entry['timestamp'])} {entry['level']:<7} {entry['message']}"


def watch_run(
    client: Any, run_id: str, *, quiet: bool = False, timeout: float | None = None
) -> dict[str, Any]:
    """Follow a run's states and logs until it is final; return the final run."""
    from push_pools.cli.output import console, styled_state
    from push_pools.errors import PushPoolsError

    out = console()
    last_state = None
    after = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        run = client.get_run(run_id)
        if not quiet:
            while batch := client.get_logs(run_id, after=after):  # every page, not just one
                for entry in batch:
                    after = entry["id"]
                    out.print(format_log(entry), markup=False)
            if run["state"] != last_state:
                out.print(f"{run['name']}: {styled_state(run['state'])}")
                last_state = run["state"]
        if run["state"] in FINAL_STATES:
            if not quiet and run["state"] != "COMPLETED" and run["state_message"]:
                out.print(run["state_message"], markup=False)
            return run
        if deadline is not None and time.monotonic() > deadline:
            raise PushPoolsError(
                f"flow run {run_id} is still {run['state']} after {timeout:g}s of watching"
            )
        time.sleep(0.2)


@app.command("ls")
def ls(
    state: Annotated[
        list[str] | None,
        typer.Option("--state", help="Only runs in this state, e.g. COMPLETED (repeatable)."),
    ] = None,
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="Only runs of 'flow-name/deployment-name'.")
    ] = None,
    pool: Annotated[str | None, typer.Option("--pool", help="Only runs of this work pool.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="Most runs to show.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List flow runs: the most recent first, then the upcoming ones, soonest first."""
    from push_pools.cli.output import print_json, print_table, short_time, styled_state
    from push_pools.errors import InvalidInput
    from push_pools.states import StateType

    states = [s.upper() for s in state or []]
    for value in states:
        if value not in StateType.__members__:
            raise InvalidInput(
                f"unknown state '{value}'; use one of {', '.join(StateType.__members__)}"
            )
    with _client() as client:
        runs = client.list_runs(
            state=states or None, deployment=deployment, work_pool=pool, limit=limit
        )
    if as_json:
        print_json(runs)
        return
    print_table(
        "Flow runs",
        ["id", "name", "deployment", "state", "scheduled", "duration"],
        [
            [
                r["id"],
                r["name"],
                f"{r['flow_name']}/{r['deployment_name'] or '-'}",
                styled_state(r["state"]),
                short_time(r["scheduled_time"]),
                _duration(r),
            ]
            for r in runs
        ],
    )


def _duration(run: dict[str, Any]) -> str:
    from datetime import datetime

    if not run["start_time"] or not run["end_time"]:
        return ""
    seconds = (
        datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"])
    ).total_seconds()
    return f"{seconds:.2f}s"


@app.command("inspect")
def inspect(run_id: IdArg, as_json: JsonOption = False) -> None:
    """Show a flow run with its state history."""
    from push_pools.cli.output import print_fields, print_json, short_time

    with _client() as client:
        run = client.get_run(run_id)
        states = client.run_states(run["id"])
    if as_json:
        print_json({**run, "states": states})
        return
    print_fields(f"Flow run {run['name']}", run)
    print_fields(
        "State history",
        {short_time(s["timestamp"]): f"{s['type']} {s['message'] or ''}" for s in states},
    )


@app.command("logs")
def logs(
    run_id: IdArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print a flow run's logs."""
    from push_pools.cli.output import print_json

    with _client() as client:
        run_id = client.get_run(run_id)["id"]
        after = 0
        collected: list[dict[str, Any]] = []
        while True:
            batch = client.get_logs(run_id, after=after)
            for entry in batch:
                after = entry["id"]
                if as_json:
                    collected.append(entry)
                else:
                    typer.echo(format_log(entry))
            if batch:
                continue
            if not follow or client.get_run(run_id)["state"] in FINAL_STATES:
                # One more read: lines shipped just before the final state are not lost.
                if follow:
                    for entry in client.get_logs(run_id, after=after):
                        collected.append(entry) if as_json else typer.echo(format_log(entry))
                break
            time.sleep(0.3)
    if as_json:
        print_json(collected)


@app.command("cancel")
def cancel(run_id: IdArg, as_json: JsonOption = False) -> None:
    """Cancel a run: one that has not started is Cancelled at once, a running one is stopped."""
    from push_pools.cli.output import console, print_json

    with _client() as client:
        run = client.cancel_run(client.get_run(run_id)["id"])
    if as_json:
        print_json(run)
    else:
        console().print(f"Flow run [bold]{run['name']}[/bold] is {run['state']}.")


@app.command("delete")
def delete(run_id: IdArg) -> None:
    """Delete a flow run, its states and logs."""
    from push_pools.cli.output import console

    with _client() as client:
        run = client.get_run(run_id)
        client.delete_run(run["id"])
    console().print(f"Flow run {run['name']} ({run['id']}) deleted.")
