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
    worker.stop()
