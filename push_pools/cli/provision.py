"""What `--provision-infra`, `provision-infra` and `deprovision-infra` do, for the CLI.

The provisioner plans and acts; this module shows the plan, asks before changing anything,
draws the progress, stores the credentials block and writes the results into the pool.
"""

from __future__ import annotations

import sys
from typing import Any

from push_pools.errors import InvalidInput, NotFound


class BlockCredentials:
    """provisioners.registry.CredentialsStore over the API: blocks of one cloud's type."""

    def __init__(self, client: Any, block_type: str) -> None:
        self.client = client
        self.block_type = block_type

    def save(self, name: str, data: dict[str, Any]) -> None:
        self.client.create_block(
            {"name": name, "block_type": self.block_type, "data": data, "overwrite": True}
        )

    def exists(self, name: str) -> bool:
        try:
            self.client.get_block(name)
        except NotFound:
            return False
        return True


def _confirm(question: str, yes: bool) -> None:
    import typer

    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(
            "refusing to change your cloud account without confirmation: pass --yes "
            "(or --dry-run to only see the plan)"
        )
    typer.confirm(question, abort=True)


def _progress_bar(total_label: str) -> tuple[Any, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        transient=False,
    )
    task = progress.add_task(total_label, total=None)

    def on_event(event: Any) -> None:
        progress.update(task, total=event.total, description=f"{event.phase}: {event.title}")
        if event.phase in ("done", "skipped", "deleted"):
            progress.advance(task)

    return progress, on_event


def provision(
    client: Any,
    pool_type: str,
    pool_name: str,
    values: dict[str, Any],
    *,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    pool_exists: bool,
) -> dict[str, Any] | None:
    """Plan (and unless dry_run, apply) a pool's infrastructure.

    `values`: the pool type's provisioning options. Returns the job-variable defaults for the
    pool's template, or None for a dry run.
    """
    from provisioners.records import ApiRecorder
    from provisioners.registry import provisioner_for, spec_for
    from push_pools.cli.output import console, print_json, print_table

    out = console()
    recorder = ApiRecorder(client, pool_name)
    provisioner = provisioner_for(pool_type, pool_name, values, records=recorder.load())
    who = provisioner.preflight()
    recorder.actor = who.caller
    plan = provisioner.plan(
        recorder, credentials=BlockCredentials(client, spec_for(pool_type).credentials_block_type)
    )
    steps = plan.preview()
    if dry_run:
        if as_json:
            print_json(
                {
                    "pool": pool_name,
                    "cloud": provisioner.cloud,
                    "account": who.account,
                    "caller": who.caller,
                    "region": who.region,
                    "pool_exists": pool_exists,
                    "steps": [
                        {
                            "id": s.step_id,
                            "title": s.title,
                            "status": str(s.status),
                            "detail": s.detail,
                        }
                        for s in steps
                    ],
                }
            )
            return None
    if not as_json:
        out.print(
            f"Provisioning {provisioner.cloud.upper()} {who.scope} [bold]{who.account}[/bold] "
            f"in {who.region} as {who.caller} for pool [bold]{pool_name}[/bold]"
        )
        if who.note:
            out.print(who.note, markup=False)
        print_table(
            "Plan",
            ["step", "resource", "status", "detail"],
            [[s.step_id, s.title, str(s.status), s.detail] for s in steps],
        )
    if dry_run:
        out.print("Dry run: nothing was changed.")
        return None
    changes = [s for s in steps if str(s.status) != "exists"]
    if changes:
        _confirm(f"Create or update {len(changes)} resources in {who.scope} {who.account}?", yes)
    if as_json:
        outputs = plan.apply()
    else:
        progress, on_event = _progress_bar("provisioning")
        with progress:
            outputs = plan.apply(on_event)
    defaults = provisioner.template_defaults(outputs)
    if not as_json:
        out.print("Infrastructure successfully provisioned!")
    return defaults


def deprovision(
    client: Any, pool_type: str, pool_name: str, values: dict[str, Any], *, yes: bool, as_json: bool
) -> list:
    """Remove exactly what provisioning created for the pool (recorded), last first."""
    from provisioners.records import ApiRecorder
    from provisioners.registry import provisioner_for, spec_for
    from push_pools.cli.output import console

    recorder = ApiRecorder(client, pool_name)
    records = recorder.load()
    if not records:
        raise NotFound(f"nothing was provisioned for pool '{pool_name}'")
    # The records say where (region, project, ...); `values` only how to reach the cloud.
    provisioner = provisioner_for(pool_type, pool_name, values, records=records)
    plan = provisioner.plan(
        recorder, credentials=BlockCredentials(client, spec_for(pool_type).credentials_block_type)
    )
    owned = [r for r in records if r.created]
    _confirm(f"Delete {len(owned)} resources that push-pools created for '{pool_name}'?", yes)
    if as_json:
        removed = plan.teardown()
    else:
        progress, on_event = _progress_bar("deprovisioning")
        with progress:
            removed = plan.teardown(on_event)
    block = provisioner.credentials_block_name()
    if block and any(r.data.get("credentials_block") == block and r.created for r in records):
        try:
            client.delete_block(block)
        except NotFound:
            pass
    if not as_json:
        console().print(f"Removed {len(removed)} resources of pool '{pool_name}'.")
    return removed


def apply_defaults(template: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The template with each provisioned value as its variable's default."""
    properties = template.setdefault("variables", {}).setdefault("properties", {})
    for key, value in defaults.items():
        if key in properties:
            properties[key]["default"] = value
    return template
