"""The Docker pool's worker against the Docker emulator; about 20 s.

    PYTHONPATH=. /work/main/.venv/bin/python benchmarks/bench_docker_pool.py [--runs 20] [--limit 4]

An EmbeddedServer with a `docker` pool, a Worker with the real DockerExecutor (docker SDK over
HTTP to tests/emulators/docker, whose containers are local subprocesses running the engine),
`--runs` runs of a trivial flow created back to back. Measured: seconds from the first create
until every run is COMPLETED; the time the worker spends in submit (pull check, create, start:
our code plus the SDK's calls) per run; engine API calls per run. A container costs a Python
start here, as it does in a real container, so the wall time is mostly interpreter starts.

Exits 1 if a run does not complete or the emulator failed (printed as FAIL lines).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _harness import log, machine_info, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POOL = "bench-docker"
TIMEOUT_S = 180.0


def measure(runs: int, limit: int) -> dict[str, Any]:
    from push_pools import pool_types
    from push_pools.client import Client
    from push_pools.embedded import EmbeddedServer
    from push_pools.executors.base import Submission
    from push_pools.executors.docker.executor import DockerExecutor
    from push_pools.executors.docker.template import POOL_TYPE
    from push_pools.worker import Worker
    from tests.emulators.docker import DockerEmulator

    if POOL_TYPE.name not in pool_types.names():  # an install that predates the entry point
        pool_types.register(POOL_TYPE)
    submit_seconds: list[float] = []

    class TimedExecutor(DockerExecutor):
        def submit(self, submission: Submission) -> str:
            started = time.perf_counter()
            try:
                return super().submit(submission)
            finally:
                submit_seconds.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp, DockerEmulator() as engine:
        os.environ["DOCKER_HOST"] = engine.docker_host
        project = Path(tmp) / "project"
        project.mkdir()
        (project / "flows.py").write_text(
            "from push_pools import flow\n\n@flow\ndef trivial() -> int:\n    return 1\n"
        )
        server = EmbeddedServer(database_url=f"sqlite:///{tmp}/store.db").start()
        worker = None
        try:
            with Client(server.api_url) as client:
                template = client.default_base_job_template("docker")
                template["variables"]["properties"]["env"]["default"] = {"PYTHONPATH": str(ROOT)}
                client.create_work_pool(
                    {"name": POOL, "type": "docker", "base_job_template": template}
                )
                deployment = client.upsert_deployment(
                    {
                        "name": "bench",
                        "flow_name": "trivial",
                        "entrypoint": "flows.py:trivial",
                        "work_pool_name": POOL,
                        "pull_steps": [{"set_working_directory": {"directory": str(project)}}],
                    }
                )
                worker = Worker(
                    POOL,
                    limit=limit,
                    executor=TimedExecutor(output=io.StringIO()),
                    client_factory=lambda: Client(server.api_url),
                ).start()
                time.sleep(1.0)  # the worker's first poll, outside the clock
                requests_before = len(engine.requests)
                started = time.perf_counter()
                ids = [client.create_run(deployment["id"], {})["id"] for _ in range(runs)]
                states: dict[str, str] = {}
                while time.perf_counter() - started < TIMEOUT_S:
                    states = {run_id: client.get_run(run_id)["state"] for run_id in ids}
                    if all(s in ("COMPLETED", "FAILED", "CRASHED") for s in states.values()):
                        break
                    time.sleep(0.1)
                seconds = time.perf_counter() - started
                calls = Counter(
                    f"{r.method} {r.path.split('/')[1]}" for r in engine.requests[requests_before:]
                )
        finally:
            if worker is not None:
                worker.stop(cancel_running=True, timeout=10)
            server.stop()
        return {
            "runs": runs,
            "limit": limit,
            "seconds": seconds,
            "completed": sum(1 for s in states.values() if s == "COMPLETED"),
            "states": dict(Counter(states.values())),
            "submit_median_s": statistics.median(submit_seconds) if submit_seconds else None,
            "submit_max_s": max(submit_seconds) if submit_seconds else None,
            "engine_calls": sum(calls.values()),
            "engine_calls_by_kind": dict(calls),
            "emulator_errors": list(engine.errors),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="runs (default 20)")
    ap.add_argument("--limit", type=int, default=4, help="the worker's --limit (default 4)")
    args = ap.parse_args()
    load_start = os.getloadavg()
    log(f"{args.runs} runs through a docker pool worker (limit {args.limit}), emulated engine")
    result = measure(args.runs, args.limit)
    fails = []
    if result["completed"] != args.runs:
        fails.append(
            f"FAIL: {result['completed']} of {args.runs} runs completed: {result['states']}"
        )
    if result["emulator_errors"]:
        fails.append(f"FAIL: the emulator failed: {result['emulator_errors'][0]}")
    per_run = result["engine_calls"] / args.runs
    rows = [
        [
            f"{args.runs} runs, limit {args.limit}: until all completed",
            f"{result['seconds']:.2f} s",
        ],
        [
            "submit (pull check, create, start), median",
            f"{result['submit_median_s'] * 1000:.1f} ms",
        ],
        ["submit, max", f"{result['submit_max_s'] * 1000:.1f} ms"],
        ["engine API calls per run", f"{per_run:.1f}"],
    ]
    print()
    table = print_table(["metric", "value"], rows)
    for line in fails:
        print(line)
    payload = {
        "benchmark": "bench_docker_pool",
        "date": time.strftime("%Y-%m-%d"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "result": result,
        "fails": fails,
        "table": table,
    }
    path = write_json("bench-docker-pool", payload)
    print(f"\nwrote {path}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
