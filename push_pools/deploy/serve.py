"""`flow.serve()`: a long-lived process that runs one pool-less deployment's runs."""

from __future__ import annotations

import signal
import threading
from typing import Any

from push_pools.deploy.sdk import deploy_flow


def serve_flow(
    flow: Any,
    name: str,
    *,
    limit: int = 4,
    stop: threading.Event | None = None,
    **options: Any,
) -> None:
    """Deploy `flow` as 'flow-name/name' with no pool, then run its runs until stopped.

    `stop` lets tests (or an embedding program) end serving; otherwise SIGINT/SIGTERM do.
    """
    from push_pools.worker import Worker

    deployment = deploy_flow(flow, name, None, **options)
    worker = Worker(
        f"serve:{deployment['full_name']}", limit=limit, deployment_id=deployment["id"]
    ).start()
    print(
        f"Serving '{deployment['full_name']}'. Start a run with: "
        f"push-pools deployment run '{deployment['full_name']}'. Ctrl-C to stop."
    )
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    worker.stopping.set()  # claim nothing more, whatever the server answers below
    print(f"Stopping '{deployment['full_name']}': pausing it and cancelling its runs ...")
    removed, cancelled = _wind_down(deployment)
    # The runs were cancelled above; this stops what is still running here.
    worker.stop(cancel_running=True, timeout=STOP_TIMEOUT_SECONDS)
    print(
        f"Stopped serving '{deployment['full_name']}': deployment paused "
        f"({removed} future run(s) removed, {cancelled} cancelled). Serve it again to resume."
    )


# Seconds `serve` waits for its runs' processes to end once they were told to stop.
STOP_TIMEOUT_SECONDS = 5.0
UNFINISHED = ("SCHEDULED", "LATE", "PENDING", "RUNNING")


def _wind_down(deployment: dict[str, Any]) -> tuple[int, int]:
    """Pause the deployment (the server drops its future runs and wakes our long poll) and
    cancel its runs not yet finished: nothing runs it once `serve` is gone, so leaving them
    would show Scheduled and then Late runs of a deployment that looks ready. Returns (future
    runs removed, runs cancelled); a server that cannot be reached is reported, not raised."""
    from push_pools.client import Client
    from push_pools.errors import PushPoolsError

    removed = cancelled = 0
    try:
        with Client() as client:
            before = _unfinished(client, deployment["id"])
            client.update_deployment(deployment["id"], {"paused": True})
            left = _unfinished(client, deployment["id"])
            removed = len(before) - len(left)
            for run in left:
                try:
                    client.cancel_run(run["id"])
                    cancelled += 1
                except PushPoolsError:
                    continue  # it ended meanwhile
    except PushPoolsError as exc:
        print(f"could not pause '{deployment['full_name']}' on the server: {exc.message}")
    return removed, cancelled


def _unfinished(client: Any, deployment_id: str) -> list[dict[str, Any]]:
    return client.list_runs(deployment_id=deployment_id, state=list(UNFINISHED), limit=10_000)
