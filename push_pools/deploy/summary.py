"""What a user reads after deploying, from the CLI and from `Flow.deploy()` alike: where the
deployment runs, its schedules, when it runs next, and how to start it by hand."""

from __future__ import annotations

from typing import Any

__all__ = ["print_summary"]


def print_summary(deployment: dict[str, Any], *, created: bool) -> None:
    from push_pools.cli.output import console, next_runs_text

    full_name = deployment.get("full_name") or f"{deployment['flow_name']}/{deployment['name']}"
    verb = "created" if created else "updated"
    out = console()
    out.print(f"Deployment [bold]'{full_name}'[/bold] {verb} [dim](id {deployment['id']})[/dim]")
    pool = deployment.get("work_pool_name")
    queue = deployment.get("work_queue_name")
    in_queue = f" (queue {queue})" if queue else ""
    out.print(f"  pool:      {pool or '-'}{in_queue}", markup=False)
    schedules = deployment.get("schedules") or []
    for schedule in schedules:
        text = schedule.get("description") or schedule.get("cron") or "?"
        state = "" if schedule.get("active", True) else " (inactive)"
        out.print(f"  schedule:  {text}{state}", markup=False)
    if schedules:
        out.print(f"  next runs: {next_runs_text(deployment)}", markup=False)
    else:
        out.print("  schedule:  none (runs start only when asked)", markup=False)
    if deployment.get("status_reason"):
        out.print(
            f"[yellow]Warning:[/yellow] its runs cannot start yet: {deployment['status_reason']}",
            highlight=False,
        )
    if deployment.get("paused"):
        out.print("  paused:    yes (resume it to let its schedules make runs)", markup=False)
    out.print(f"Run it with: push-pools deployment run '{full_name}'", markup=False)
