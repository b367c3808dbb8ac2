"""The Cloud Run executor (cloud-run:push) dispatching against the GCP emulator; about 20 s.

    /work/main/.venv/bin/python benchmarks/bench_cloud_run.py [--runs 100]

An EmbeddedServer (its own dispatcher off) with a cloud-run:push pool whose credentials block
holds a key the emulator issued, `--runs` runs of one deployment due now, and a Dispatcher with
the real CloudRunExecutor. Measured: submissions per second until every run has an
infrastructure id, the Cloud Run calls the emulator answered (by verb and resource), how many
jobs were created (aim: 1) and how many run_job calls were made (aim: one per run). The
executions run `true` in the emulator, so they cost a process each but no Python start.

Exits 1 if a check fails (printed as FAIL lines).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _harness import log, machine_info, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROJECT = "bench-project"
REGION = "europe-west1"
POOL = "bench-cloud-run"
DISPATCH_TIMEOUT_S = 300.0
_ID = re.compile(r"/(jobs|executions|operations|tasks)/[^/:]+")


def call_kind(method: str, path: str) -> str:
    """ "GET executions", "POST jobs:run", ...: a call without its resource ids."""
    short = _ID.sub(lambda m: "/" + m.group(1) + "/*", path)
    tail = short.rsplit("/locations/", 1)[-1].split("/", 1)[-1]
    return f"{method} {tail}"


def dispatch(emulator: Any, key: dict[str, Any], runs: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from push_pools import pool_types
    from push_pools.client import Client
    from push_pools.dispatch import Dispatcher
    from push_pools.embedded import EmbeddedServer
    from push_pools.executors.cloud_run.executor import CloudRunExecutor
    from push_pools.executors.cloud_run.template import POOL_TYPE, default_template
    from push_pools.store.tables import FlowRun

    if POOL_TYPE.name not in pool_types.names():  # an install that predates the entry point
        pool_types.register(POOL_TYPE)
    with tempfile.TemporaryDirectory(prefix="bench-cloud-run-") as tmp:
        server = EmbeddedServer(
            database_url=f"sqlite:///{tmp}/store.db", run_dispatcher=False
        ).start()
        try:
            with Client(server.api_url) as client:
                client.create_block(
                    {
                        "name": "bench-gcp",
                        "block_type": "gcp-credentials",
                        "data": {"service_account_info": key, "project": PROJECT},
                    }
                )
                template = default_template()
                properties = template["variables"]["properties"]
                defaults = {"region": REGION, "credentials": "bench-gcp", "command": "true"}
                for name, value in defaults.items():
                    properties[name]["default"] = value
                client.create_work_pool(
                    {"name": POOL, "type": POOL_TYPE.name, "base_job_template": template}
                )
                deployment = client.upsert_deployment(
                    {
                        "name": "bench",
                        "flow_name": "trivial",
                        "entrypoint": "flows.py:trivial",
                        "work_pool_name": POOL,
                    }
                )
                now = datetime.now(UTC).isoformat()
                for i in range(runs):
                    client.create_run(
                        deployment["id"], {"parameters": {"i": i}, "scheduled_time": now}
                    )
            executor = CloudRunExecutor()
            dispatcher = Dispatcher(
                server.store,
                api_url=server.api_url,
                name="bench",
                executor_factory=lambda _pool_type: executor,
            )
            import push_pools.store.blocks  # noqa: F401  (lazy import, outside the clock)

            emulator.calls.clear()
            try:
                started = time.perf_counter()
                rounds = 0
                while True:
                    rounds += 1
                    dispatcher.dispatch_once()
                    with server.store.session() as session:
                        done = session.scalar(
                            select(func.count())
                            .select_from(FlowRun)
                            .where(FlowRun.infrastructure_id.is_not(None))
                        )
                    if done >= runs:
                        break
                    if time.perf_counter() - started > DISPATCH_TIMEOUT_S:
                        raise RuntimeError(f"only {done}/{runs} submitted")
                seconds = time.perf_counter() - started
                calls = [c for c in emulator.calls if c.path.startswith("/v2/")]
            finally:
                dispatcher.stop()
            with server.store.session() as session:
                states = Counter(
                    dict(
                        session.execute(
                            select(FlowRun.state_type, func.count()).group_by(FlowRun.state_type)
                        ).all()
                    )
                )
            # What the runs' status checks cost, once every execution has ended.
            for execution in list(emulator.executions.values()):
                emulator.wait_for_execution(execution.name, timeout=120)
            with server.store.session() as session:
                ids = list(
                    session.scalars(
                        select(FlowRun.infrastructure_id).where(
                            FlowRun.infrastructure_id.is_not(None)
                        )
                    )
                )
            status_started = time.perf_counter()
            statuses = executor.status([i for i in ids if i])
            status_seconds = time.perf_counter() - status_started
        finally:
            server.stop()
    by_kind = Counter(call_kind(c.method, c.path) for c in calls)
    return {
        "runs": runs,
        "seconds": seconds,
        "submissions_per_s": runs / seconds,
        "dispatch_once_calls": rounds,
        "cloud_run_calls": len(calls),
        "jobs_created": by_kind["POST jobs"],
        "run_job_calls": by_kind["POST jobs/*:run"],
        "by_call": dict(sorted(by_kind.items())),
        "states": dict(states),
        "jobs_in_project": len(emulator.jobs),
        "status_seconds": status_seconds,
        "status_exit_codes": dict(Counter(str(s.exit_code) for s in statuses.values())),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=100, help="runs dispatched (default 100)")
    args = ap.parse_args()
    load_start = os.getloadavg()
    fails: list[str] = []
    started = time.monotonic()
    from tests.emulators.gcp import GcpEmulator

    with tempfile.TemporaryDirectory(prefix="bench-cloud-run-env-") as tmp:
        with GcpEmulator() as emulator:
            key_file = emulator.create_key_file(
                Path(tmp) / "key.json",
                project=PROJECT,
                account_id="push-pools-control",
                roles=("roles/run.developer", "roles/logging.viewer"),
            )
            os.environ["PUSH_POOLS_GCP_ENDPOINT"] = emulator.endpoint
            log(f"dispatch {args.runs} runs to Cloud Run (emulated)")
            result = dispatch(emulator, json.loads(key_file.read_text()), args.runs)
            if emulator.errors:
                fails.append(f"FAIL: the emulator failed: {emulator.errors[0]}")
    if result["jobs_created"] != 1 or result["jobs_in_project"] != 1:
        fails.append(f"FAIL: {result['jobs_created']} jobs created for one deployment")
    if result["run_job_calls"] != args.runs:
        fails.append(f"FAIL: {result['run_job_calls']} run_job calls for {args.runs} runs")
    load_end = os.getloadavg()
    rows = [
        [f"dispatch {args.runs} runs: until all have an id", f"{result['seconds']:.2f} s"],
        [f"dispatch {args.runs} runs: submissions/s", f"{result['submissions_per_s']:.1f}"],
        [f"dispatch {args.runs} runs: Cloud Run API calls", str(result["cloud_run_calls"])],
        ["jobs created (aim 1)", str(result["jobs_created"])],
        [f"run_job calls (aim {args.runs})", str(result["run_job_calls"])],
        [f"status() of {args.runs} finished runs", f"{result['status_seconds']:.2f} s"],
    ]
    print()
    table = print_table(["metric", "value"], rows)
    for line in fails:
        print(line)
    payload = {
        "benchmark": "bench_cloud_run",
        "date": time.strftime("%Y-%m-%d"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "dispatch": result,
        "fails": fails,
        "wall_s": time.monotonic() - started,
        "table": table,
    }
    path = write_json("bench-cloud-run", payload)
    print(f"\nwrote {path} ({payload['wall_s']:.0f} s)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
