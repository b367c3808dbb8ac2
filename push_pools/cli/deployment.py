"""`push-pools deployment`: list, inspect, run, pause, resume and delete deployments."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from push_pools.cli.help import HelpGroup

app = typer.Typer(
    cls=HelpGroup, help="Inspect and run deployments.", no_args_is_help=True, rich_markup_mode=None
)

NameArg = Annotated[str, typer.Argument(help="'flow-name/deployment-name'.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable fields) for scripts.")]
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _client() -> Any:
    from push_pools.client import Client

    return Client(stdlib_http=True)


@app.command("ls")
def ls(as_json: JsonOption = False) -> None:
    """List deployments with their pool, schedules and status."""
    from push_pools.cli.output import next_runs_text, print_json, print_table

    with _client() as client:
        deployments = client.list_deployments()
    if as_json:
        print_json(deployments)
        return
    print_table(
        "Deployments",
        ["name", "work pool", "schedules", "next run", "status"],
        [
            [
                d["full_name"],
                _pool_label(d),
                "; ".join(s["description"] for s in d["schedules"]) or "none",
                next_runs_text(d, count=1),
                d["status"],
            ]
            for d in deployments
        ],
    )


def _pool_label(deployment: dict[str, Any]) -> str:
    if deployment["work_pool_name"] is None:
        return "(served)"
    if deployment.get("work_pool_deleted"):
        return f"{deployment['work_pool_name']} (deleted)"
    return deployment["work_pool_name"]


@app.command("inspect")
def inspect(name: NameArg, as_json: JsonOption = False) -> None:
    """Show a deployment."""
    from push_pools.cli.output import next_runs_text, print_fields, print_json

    with _client() as client:
        deployment = client.get_deployment_by_name(name)
    if as_json:
        print_json(deployment)
    else:
        shown = {**deployment, "next_runs": next_runs_text(deployment)}
        print_fields(f"Deployment {deployment['full_name']}", shown)


@app.command("run")
def run(
    name: NameArg,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Flow parameter key=value (repeatable).")
    ] = None,
    job_variable: Annotated[
        list[str] | None,
        typer.Option("--job-variable", help="Job variable override key=value (repeatable)."),
    ] = None,
    start_in: Annotated[
        float | None, typer.Option(help="Schedule the run this many seconds from now.", min=0)
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Wait for the final state; exit non-zero unless it completed."
        ),
    ] = False,
    watch_timeout: Annotated[
        float | None, typer.Option(help="Give up watching after this many seconds.", min=0)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a run of a deployment now, and print its id."""
    from datetime import UTC, datetime, timedelta

    from push_pools.cli.output import console, parse_key_values, print_json
    from push_pools.cli.params import parse_params

    job_variables = parse_key_values(job_variable, "--job-variable")
    with _client() as client:
        deployment = client.get_deployment_by_name(name)
        # The flow's schema decides how each value is read: "123" stays text for a str.
        properties = (deployment.get("parameter_schema") or {}).get("properties") or {}
        body: dict[str, Any] = {
            "parameters": parse_params(param or [], properties),
            "job_variables": job_variables,
        }
        if start_in:
            when = datetime.now(UTC) + timedelta(seconds=start_in)
            body["scheduled_time"] = when.isoformat()
        run = client.create_run(deployment["id"], body)
        if not as_json:
            console().print(f"Created flow run [bold]{run['name']}[/bold]")
            typer.echo(run["id"])
        if watch:
            from push_pools.cli.flow_run import watch_run

            run = watch_run(client, run["id"], quiet=as_json, timeout=watch_timeout)
        if as_json:
            print_json(run)
    if watch and run["state"] != "COMPLETED":
        raise typer.Exit(1)


def _set_paused(name: str, paused: bool, as_json: bool) -> None:
    from push_pools.cli.output import console, print_json

    with _client() as client:
        deployment = client.get_deployment_by_name(name)
        deployment = client.update_deployment(deployment["id"], {"paused": paused})
    if as_json:
        print_json(deployment)
    else:
        console().print(
            f"Deployment [bold]{deployment['full_name']}[/bold] "
            f"{'paused' if paused else 'resumed'}."
        )


@app.command("pause")
def pause(name: NameArg, as_json: JsonOption = False) -> None:
    """Stop scheduling new runs of the deployment."""
    _set_paused(name, True, as_json)


@app.command("resume")
def resume(name: NameArg, as_json: JsonOption = False) -> None:
    """Resume a paused deployment's schedules."""
    _set_paused(name, False, as_json)


@app.command("delete")
def delete(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Also with runs in flight: cancel them (their infrastructure is stopped).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a deployment and its runs that have not started. With runs in flight, only with
    --force."""
    from push_pools.cli.confirm import confirm_delete, consequences
    from push_pools.cli.output import console, print_json

    with _client() as client:
        deployment = client.get_deployment_by_name(name)
        # Asked first without changing anything, so a refusal comes before the question.
        plan = client.delete_deployment(deployment["id"], force=force, dry_run=True)
        effects = consequences(plan, will=True)
        confirm_delete(
            f"Delete deployment '{name}'{' and ' + ' and '.join(effects) if effects else ''}?", yes
        )
        outcome = client.delete_deployment(deployment["id"], force=force)
    if as_json:
        print_json(outcome)
        return
    out = console()
    out.print(f"Deployment [bold]{name}[/bold] deleted.")
    for line in consequences(outcome, will=False):
        out.print(line[0].upper() + line[1:] + "; they end once their infrastructure has stopped.")
