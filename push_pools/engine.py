"""The entrypoint every infrastructure runs: `python -m push_pools.engine`.

Reads the run id (PUSH_POOLS_FLOW_RUN_ID) and the API (PUSH_POOLS_API_URL, PUSH_POOLS_API_KEY)
from the environment, pulls the deployment's code, validates the parameters, waits for the
scheduled time, runs the flow with its retries and timeout, and reports states and logs.
Exit code: 0 when the run completed (or was cancelled before it started), 1 when it failed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from push_pools.client import Client
from push_pools.errors import PushPoolsError, RunSetupError
from push_pools.logs import LogShipper, ShippingHandler

RUN_ID_ENV = "PUSH_POOLS_FLOW_RUN_ID"
INFRASTRUCTURE_ID_ENV = "PUSH_POOLS_INFRASTRUCTURE_ID"
ENGINE_RETRY_SECONDS = 120.0


def jsonable_result(value: Any) -> Any:
    """The flow's return value if it is JSON, else its repr (kept short)."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)[:2000]


def prepare_code(context: dict[str, Any], client: Client | None = None) -> Path:
    """Run the deployment's pull steps; the directory they leave us in holds the code.

    A pull_bundle step downloads with `client` (the run's token), so the engine's connection
    is reused rather than a second client set up."""
    cwd = Path.cwd()
    steps = context.get("pull_steps") or []
    if steps:
        from push_pools.deploy.pull_bundle import using_client
        from push_pools.deploy.steps import run_steps

        with using_client(client):
            cwd = run_steps(steps, cwd)
    elif context.get("path"):
        cwd = Path(context["path"])
    os.chdir(cwd)
    return cwd


def wait_for_scheduled_time(scheduled_time: str) -> None:
    """Workers start a run's process a little early; the flow itself starts on time."""
    due = datetime.fromisoformat(scheduled_time)
    delay = (due - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def run(run_id: str, client: Client) -> int:
    context = client.execution_context(run_id)
    flow_run = context["flow_run"]
    shipper = LogShipper(client, run_id).start()
    handler = ShippingHandler(shipper)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    # Our own API calls are not the user's logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log = logging.getLogger("push_pools.engine")
    final: dict[str, Any] | None = None
    try:
        final = _execute(run_id, client, context, flow_run, shipper, log)
    finally:
        logging.getLogger().removeHandler(handler)
        # Every log line is shipped before the final state, so whoever sees the run finished
        # also sees all of its logs.
        shipper.close()
    if final is None:
        return 0
    client.set_state(run_id, final)
    return 0 if final["type"] == "COMPLETED" else 1


def _execute(
    run_id: str,
    client: Client,
    context: dict[str, Any],
    flow_run: dict[str, Any],
    shipper: LogShipper,
    log: logging.Logger,
) -> dict[str, Any] | None:
    """Run the flow; return the final state to report (None: the run must not start)."""
    infrastructure_id = os.environ.get(INFRASTRUCTURE_ID_ENV) or f"pid:{os.getpid()}"
    try:
        if not context.get("entrypoint"):
            raise PushPoolsError("the run has no deployment entrypoint to run")
        from push_pools.deploy.entrypoints import load_flow

        code_dir = prepare_code(context, client)
        flow = load_flow(context["entrypoint"], code_dir)
        parameters = flow.validate_parameters(flow_run["parameters"])
    except RunSetupError as exc:
        # Its environment, not its code, failed: Crashed, like a container that never started.
        log.error("could not set up the run: %s", exc.message)
        return {"type": "CRASHED", "message": exc.message}
    except PushPoolsError as exc:
        log.error("could not start the flow: %s", exc.message)
        return {"type": "FAILED", "message": exc.message}

    wait_for_scheduled_time(flow_run["scheduled_time"])
    decision = client.set_state(run_id, {"type": "RUNNING", "infrastructure_id": infrastructure_id})
    if not decision["accepted"]:
        log.info("not starting: %s", decision["reason"])
        return None
    log.info("running flow %r (run %s)", flow.name, flow_run["name"])

    def on_retry(attempt: int, exc: BaseException) -> None:
        log.warning(
            "attempt %d failed (%s: %s); retrying in %gs",
            attempt,
            type(exc).__name__,
            exc,
            flow.retry_delay_seconds,
        )
        client.set_state(
            run_id,
            {"type": "RUNNING", "message": f"retry {attempt} of {flow.retries} after: {exc}"},
        )

    try:
        result = flow.run_with_policy(parameters, on_retry=on_retry, print_sink=shipper.info)
    except Exception as exc:
        from push_pools.memory_limit import limit_from_environment, over_limit_message
        from push_pools.tracebacks import user_traceback

        limit = limit_from_environment()
        if isinstance(exc, MemoryError) and limit is not None:
            # The sandbox's limit, not a bug in the flow: one sentence that says so, then
            # where the flow was when it went over.
            message = over_limit_message(limit)
            log.error("%s, at:\n%s", message, user_traceback(exc).rstrip())
            return {"type": "CRASHED", "message": message}
        log.error("flow failed:\n%s", user_traceback(exc).rstrip())
        return {"type": "FAILED", "message": f"{type(exc).__name__}: {exc}"}
    log.info("flow completed")
    return {"type": "COMPLETED", "result": jsonable_result(result), "message": "flow completed"}


def main() -> int:
    run_id = os.environ.get(RUN_ID_ENV)
    if not run_id:
        print(f"push-pools engine: {RUN_ID_ENV} is not set; nothing to run", file=sys.stderr)
        return 2
    try:
        # A server restart must not kill the runs it already started.
        with Client(retry_unreachable_seconds=ENGINE_RETRY_SECONDS) as client:
            return run(run_id, client)
    except PushPoolsError as exc:
        print(f"push-pools engine: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
