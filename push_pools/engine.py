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
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from push_pools.client import Client
from push_pools.errors import PushPoolsError
from push_pools.logs import LogShipper, ShippingHandler

RUN_ID_ENV = "PUSH_POOLS_FLOW_RUN_ID"
INFRASTRUCTURE_ID_ENV = "PUSH_POOLS_INFRASTRUCTURE_ID"


def jsonable_result(value: Any) -> Any:
    """The flow's return value if it is JSON, else its repr (kept short)."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)[:2000]


def prepare_code(context: dict[str, Any]) -> Path:
    """Run the deployment's pull steps; the directory they leave us in holds the code."""
    cwd = Path.cwd()
    steps = context.get("pull_steps") or []
    if steps:
        from push_pools.deploy.steps import run_steps

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
    infrastructure_id = os.environ.get(INFRASTRUCTURE_ID_ENV) or f"pid:{os.getpid()}"
    try:
        try:
            if not context.get("entrypoint"):
                raise PushPoolsError("the run has no deployment entrypoint to run")
            from push_pools.deploy.entrypoints import load_flow

            code_dir = prepare_code(context)
            flow = load_flow(context["entrypoint"], code_dir)
            parameters = flow.validate_parameters(flow_run["parameters"])
        except PushPoolsError as exc:
            log.error("could not start the flow: %s", exc.message)
            client.set_state(run_id, {"type": "FAILED", "message": exc.message})
            return 1

        wait_for_scheduled_time(flow_run["scheduled_time"])
        decision = client.set_state(
            run_id, {"type": "RUNNING", "infrastructure_id": infrastructure_id}
        )
        if not decision["accepted"]:
            log.info("not starting: %s", decision["reason"])
            return 0
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
            log.error("flow failed:\n%s", traceback.format_exc())
            client.set_state(run_id, {"type": "FAILED", "message": f"{type(exc).__name__}: {exc}"})
            return 1
        client.set_state(
            run_id,
            {"type": "COMPLETED", "result": jsonable_result(result), "message": "flow completed"},
        )
        log.info("flow completed")
        return 0
    finally:
        logging.getLogger().removeHandler(handler)
        shipper.close()


def main() -> int:
    run_id = os.environ.get(RUN_ID_ENV)
    if not run_id:
        print(f"push-pools engine: {RUN_ID_ENV} is not set; nothing to run", file=sys.stderr)
        return 2
    try:
        with Client() as client:
            return run(run_id, client)
    except PushPoolsError as exc:
        print(f"push-pools engine: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
