"""`push-pools work-pool`: create and manage work pools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from push_pools.cli.help import HelpGroup
from push_pools.cli.provision_flags import (
    chosen_values,
    provision_infra_help,
    refuse_given,
    with_provision_flags,
)

app = typer.Typer(
    cls=HelpGroup, help="Create and manage work pools.", no_args_is_help=True, rich_markup_mode=None
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable fields) for scripts.")]
TemplateOption = Annotated[
    Path | None,
    typer.Option(
        "--base-job-template",
        help="JSON file with the pool's base job template "
        "(get-default-base-job-template prints a starting point).",
    ),
]


def pool_type_help() -> str:
    """The --type help: every installed pool type, built-in or from a plug-in."""
    from push_pools import pool_types

    # One name a line in a paragraph click does not rewrap ("\b"): wrapping would break a name
    # at its hyphens (azure-container-instance:push), and a user copies them from here.
    return "Pool type, one of:\n\n\b\n" + "\n".join(pool_types.names())


def read_template(path: Path) -> dict[str, Any]:
    from push_pools.errors import InvalidInput

    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read base job template '{path}': {exc.strerror}") from exc
    try:
        template = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"base job template '{path}' is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}"
        ) from exc
    if not isinstance(template, dict):
        raise InvalidInput(f"base job template '{path}' must be a JSON object")
    return template


def _client() -> Any:
    from push_pools.client import Client

    return Client(stdlib_http=True)


def _show_pool(pool: dict[str, Any], as_json: bool, verb: str | None = None) -> None:
    from push_pools.cli.output import console, print_fields, print_json

    if as_json:
        print_json(pool)
        return
    if verb:
        console().print(f"Work pool [bold]{pool['name']}[/bold] {verb}.")
        return
    fields: dict[str, Any] = {
        "id": pool["id"],
        "type": pool["type"],
        "status": pool["status"]
        + (f" ({pool['status_reason']})" if pool.get("status_reason") else ""),
        "paused": pool["paused"],
        "concurrency_limit": pool["concurrency_limit"],
        "description": pool["description"],
        "last_polled": pool["last_polled"],
        "queues": ", ".join(
            f"{q['name']} (priority {q['priority']}, {q['status']})" for q in pool["queues"]
        ),
    }
    if pool.get("isolation") is not None:
        fields["isolation"] = pool["isolation"]
    fields["base_job_template"] = pool["base_job_template"]
    print_fields(f"Work pool {pool['name']}", fields)


DryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", help="Only show the plan (with --json: as JSON); change nothing."),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@app.command("create")
@with_provision_flags()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique name of the pool.")],
    type: Annotated[str, typer.Option("--type", "-t", help=pool_type_help())],
    base_job_template: TemplateOption = None,
    paused: Annotated[bool, typer.Option(help="Create the pool paused.")] = False,
    concurrency_limit: Annotated[
        int | None, typer.Option(help="Most runs of this pool active at once.", min=0)
    ] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    # Inline, not a module-level alias: the help lists the provisioners, found only when this
    # command is built (push_pools/cli/provision_flags.py).
    provision_infra: Annotated[
        bool, typer.Option("--provision-infra", help=provision_infra_help())
    ] = False,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
    **cloud_options: Any,
) -> None:
    """Create a work pool with its 'default' queue (and, with --provision-infra, its cloud
    infrastructure)."""
    from push_pools import pool_types
    from push_pools.errors import AlreadyExists, InvalidInput, NotFound

    pool_type = pool_types.get(type)  # an unknown type is refused before anything is sent
    if dry_run and not provision_infra:
        raise InvalidInput("--dry-run previews --provision-infra; add --provision-infra")
    if not provision_infra:
        refuse_given(ctx, cloud_options, "is an option of --provision-infra; add --provision-infra")
    template = read_template(base_job_template) if base_job_template is not None else None
    body: dict[str, Any] = {
        "name": name,
        "type": type,
        "paused": paused,
        "concurrency_limit": concurrency_limit,
        "description": description,
    }
    with _client() as client:
        if provision_infra:
            from push_pools.cli.provision import apply_defaults, provision

            try:
                client.get_work_pool(name)
                raise AlreadyExists(f"work pool '{name}' already exists")
            except NotFound:
                pass
            defaults = provision(
                client,
                type,
                name,
                chosen_values(ctx, type, cloud_options),
                dry_run=dry_run,
                yes=yes,
                as_json=as_json,
                pool_exists=False,
            )
            if defaults is None:
                return
            template = apply_defaults(template or pool_type.default_template(), defaults)
        if template is not None:
            body["base_job_template"] = template
        pool = client.create_work_pool(body)
    _show_pool(pool, as_json, verb="created")
    if not as_json and not pool_types.get(type).is_push:
        from push_pools.cli.output import console

        console().print(f"Start a worker for it: push-pools worker start --pool {name}")


@app.command("ls")
def ls(as_json: JsonOption = False) -> None:
    """List work pools with their type, status (READY, NOT_READY, PAUSED) and limits."""
    from push_pools.cli.output import ago, print_json, print_table

    with _client() as client:
        pools = client.list_work_pools()
    if as_json:
        print_json(pools)
        return
    print_table(
        "Work pools",
        ["name", "type", "status", "concurrency limit", "queues", "last polled"],
        [
            [
                p["name"],
                p["type"],
                p["status"],
                p["concurrency_limit"] or "none",
                ", ".join(q["name"] for q in p["queues"]),
                ago(p["last_polled"]),
            ]
            for p in pools
        ],
    )


@app.command("inspect")
def inspect(
    name: Annotated[str, typer.Argument(help="Pool name.")], as_json: JsonOption = False
) -> None:
    """Show a work pool: status, queues, base job template."""
    with _client() as client:
        _show_pool(client.get_work_pool(name), as_json)


@app.command("update")
def update(
    name: Annotated[str, typer.Argument(help="Pool name.")],
    base_job_template: TemplateOption = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    concurrency_limit: Annotated[int | None, typer.Option(min=0)] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a pool's base job template, description or concurrency limit."""
    body: dict[str, Any] = {"description": description, "concurrency_limit": concurrency_limit}
    if base_job_template is not None:
        body["base_job_template"] = read_template(base_job_template)
    with _client() as client:
        _show_pool(client.update_work_pool(name, body), as_json, verb="updated")


def _patch(name: str, body: dict[str, Any], verb: str, as_json: bool) -> None:
    with _client() as client:
        _show_pool(client.update_work_pool(name, body), as_json, verb=verb)


@app.command("pause")
def pause(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Pause a pool: no run of it starts until it is resumed."""
    _patch(name, {"paused": True}, "paused", as_json)


@app.command("resume")
def resume(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Resume a paused pool."""
    _patch(name, {"paused": False}, "resumed", as_json)


@app.command("set-concurrency-limit")
def set_concurrency_limit(
    name: Annotated[str, typer.Argument()],
    limit: Annotated[int, typer.Argument(min=0, help="Most runs active at once.")],
    as_json: JsonOption = False,
) -> None:
    """Limit how many runs of the pool are active at once."""
    _patch(name, {"concurrency_limit": limit}, f"limited to {limit} concurrent runs", as_json)


@app.command("clear-concurrency-limit")
def clear_concurrency_limit(
    name: Annotated[str, typer.Argument()], as_json: JsonOption = False
) -> None:
    """Remove the pool's concurrency limit."""
    _patch(name, {"clear_concurrency_limit": True}, "has no concurrency limit now", as_json)


@app.command("delete")
@with_provision_flags(teardown=True)
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    yes: YesOption = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Also when the pool has deployments or unfinished runs: pause the deployments "
            "and cancel the runs (their infrastructure is stopped and cleaned up).",
        ),
    ] = False,
    deprovision_infra: Annotated[
        bool,
        typer.Option(
            "--deprovision-infra", help="First remove the cloud resources push-pools created."
        ),
    ] = False,
    as_json: JsonOption = False,
    **cloud_options: Any,
) -> None:
    """Delete a pool and its queues. A pool with deployments or unfinished runs is deleted only
    with --force."""
    from push_pools.cli.confirm import confirm_delete, consequences, plural
    from push_pools.cli.output import console, print_json
    from push_pools.errors import Conflict

    if not deprovision_infra:
        refuse_given(ctx, cloud_options, "is an option of --deprovision-infra")
    with _client() as client:
        # Asked first without changing anything: a refusal (or a typo) must come before the
        # question and before any cloud resource is removed.
        plan = client.delete_work_pool(name, force=force, dry_run=True)
        if deprovision_infra and plan["cancelled_runs"]:
            raise Conflict(
                f"work pool '{name}' has {plural(len(plan['cancelled_runs']), 'unfinished run')}:"
                " its infrastructure cannot be removed while they may use it; cancel them "
                "(`push-pools flow-run cancel ID`) and run this again once they have ended"
            )
        effects = consequences(plan, will=True)
        confirm_delete(
            f"Delete work pool '{name}'{' and ' + ' and '.join(effects) if effects else ''}?", yes
        )
        if deprovision_infra:
            _deprovision(ctx, client, name, cloud_options, yes=True, as_json=as_json)
        outcome = client.delete_work_pool(name, force=force)
    if as_json:
        print_json(outcome)
        return
    out = console()
    out.print(f"Work pool [bold]{name}[/bold] deleted.")
    for line in consequences(outcome, will=False):
        out.print(line[0].upper() + line[1:] + ".")
    if outcome["paused_deployments"]:
        out.print("Deploy them to another pool to run them again.")
    if outcome["cancelled_runs"]:
        out.print("Runs in flight end once their infrastructure has stopped.")


def _deprovision(
    ctx: typer.Context,
    client: Any,
    name: str,
    cloud_options: dict[str, Any],
    *,
    yes: bool,
    as_json: bool,
) -> list[Any]:
    from push_pools.cli.provision import deprovision

    pool_type = client.get_work_pool(name)["type"]
    # Where the pool was provisioned (region, project, ...) comes from its records.
    values = chosen_values(ctx, pool_type, cloud_options, teardown=True)
    return deprovision(client, pool_type, name, values, yes=yes, as_json=as_json)


@app.command("provision-infra")
@with_provision_flags()
def provision_infra(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="An existing pool.")],
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
    **cloud_options: Any,
) -> None:
    """Create (or repair) the cloud infrastructure of an existing pool and point its job
    template at it. Safe to run again: only what is missing or drifted changes."""
    from push_pools.cli.provision import apply_defaults, provision

    with _client() as client:
        pool = client.get_work_pool(name)
        defaults = provision(
            client,
            pool["type"],
            name,
            chosen_values(ctx, pool["type"], cloud_options),
            dry_run=dry_run,
            yes=yes,
            as_json=as_json,
            pool_exists=True,
        )
        if defaults is None:
            return
        template = apply_defaults(pool["base_job_template"], defaults)
        pool = client.update_work_pool(name, {"base_job_template": template})
    _show_pool(pool, as_json, verb="now uses the provisioned infrastructure")


@app.command("deprovision-infra")
@with_provision_flags(teardown=True)
def deprovision_infra(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The pool whose infrastructure to remove.")],
    yes: YesOption = False,
    as_json: JsonOption = False,
    **cloud_options: Any,
) -> None:
    """Remove exactly the cloud resources push-pools created for the pool, last first (also
    after a half-finished provisioning). Resources it adopted, like a default VPC, stay.
    Where they are (region, project) comes from the pool's provisioning records."""
    from push_pools.cli.output import print_json

    with _client() as client:
        removed = _deprovision(ctx, client, name, cloud_options, yes=yes, as_json=as_json)
    if as_json:
        print_json([r.to_dict() for r in removed])


@app.command("get-default-base-job-template")
def get_default_base_job_template(
    type: Annotated[str, typer.Option("--type", "-t", help=pool_type_help())],
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Write it to this file.")
    ] = None,
) -> None:
    """Print a pool type's default base job template (JSON), to edit and pass to create."""
    from push_pools import pool_types

    template = pool_types.get(type).default_template()
    text = json.dumps(template, indent=2) + "\n"
    if file is None:
        typer.echo(text, nl=False)
    else:
        file.write_text(text)
        typer.echo(f"Wrote the default '{type}' base job template to {file}")
