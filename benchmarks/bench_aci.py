"""The ACI executor (azure-container-instance:push) dispatching against the Azure emulator.

    /work/main/.venv/bin/python benchmarks/bench_aci.py [--runs 100]

An EmbeddedServer (its own dispatcher off) with an azure-container-instance:push pool whose
azure-credentials block holds a service principal with only "Azure Container Instances
Contributor Role" on the pool's resource group, `--runs` runs of one deployment due now, and a
Dispatcher with the real AciExecutor. Measured: submissions per second until every run has an
infrastructure id, the ARM calls the emulator answered (by verb and resource), container groups
created (aim: one per run) and how long status() of every finished run takes. The containers
run `true`, so they cost a process each but no Python start.

Exits 1 if a check fails (printed as FAIL lines).
"""

from __future__ import annotations

import argparse
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

LOCATION = "westeurope"
RESOURCE_GROUP = "rg-bench-aci"
POOL = "bench-aci"
DISPATCH_TIMEOUT_S = 300.0
_ID = re.compile(r"/(containerGroups|operations|resourcegroups|resourceGroups)/[^/?]+")


def call_kind(method: str, path: str) -> str:
    """ "PUT containerGroups/*", "GET providers/Microsoft.ContainerInstance", ...: a call
    without its subscription and resource ids."""
    short = _ID.sub(lambda m: "/" + m.group(1) + "/*", path)
    namespace = "/providers/Microsoft.ContainerInstance/"
    if namespace in short:
        return f"{method} {short.split(namespace, 1)[1]}"
    return f"{method} {short.removeprefix('/subscriptions/').split('/', 1)[-1]}"


def dispatch(emulator: Any, block: dict[str, Any], runs: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from push_pools import pool_types
    from push_pools.client import Client
    from push_pools.dispatch import Dispatcher
    from push_pools.embedded import EmbeddedServer
    from push_pools.executors.aci.executor import AciExecutor
    from push_pools.executors.aci.template import POOL_TYPE, default_template
    from push_pools.store.tables import FlowRun

    if POOL_TYPE.name not in pool_types.names():  # an install that predates the entry point
        pool_types.register(POOL_TYPE)
    with tempfile.TemporaryDirectory(prefix="bench-aci-") as tmp:
        server = EmbeddedServer(
            database_url=f"sqlite:///{tmp}/store.db", run_dispatcher=False
        ).start()
        try:
            with Client(server.api_url) as client:
                client.create_block(
                    {"name": "bench-azure", "block_type": "azure-credentials", "data": block}
                )
                template = default_template()
                properties = template["variables"]["properties"]
                defaults = {
                    "subscription_id": emulator.subscription_id,
                    "resource_group_name": RESOURCE_GROUP,
                    "aci_credentials": "bench-azure",
                    "command": "true",
                }
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
            executor = AciExecutor()
            dispatcher = Dispatcher(
                server.store,
                api_url=server.api_url,
                name="bench",
                executor_factory=lambda _pool_type: executor,
            )
            import push_pools.store.blocks  # noqa: F401  (lazy import, outside the clock)

            emulator.clear_calls()
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
                calls = [c for c in emulator.calls if c.path.startswith("/subscriptions/")]
            finally:
                dispatcher.stop()
            # What the runs' status checks cost, once every container has ended.
            emulator.wait_until(
                lambda: all(
                    g.containers[0].current_state.state == "Terminated"
                    for g in emulator.container_groups()
                ),
                timeout=120,
            )
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
            executor.close()
        finally:
            server.stop()
    by_kind = Counter(call_kind(c.method, c.path) for c in calls)
    return {
        "runs": runs,
        "seconds": seconds,
        "submissions_per_s": runs / seconds,
        "dispatch_once_calls": rounds,
        "arm_calls": len(calls),
        "groups_created": by_kind["PUT containerGroups/*"],
        "by_call": dict(sorted(by_kind.items())),
        "groups_in_resource_group": len(emulator.container_groups()),
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
    from tests.emulators.azure import AzureEmulator

    with AzureEmulator() as emulator:
        emulator.add_resource_group(RESOURCE_GROUP, LOCATION)
        scope = f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RESOURCE_GROUP}"
        principal = emulator.create_service_principal(
            "push-pools-control", roles=[("Azure Container Instances Contributor Role", scope)]
        )
        for name, value in emulator.env(principal).items():
            os.environ[name] = value
        block = {
            "tenant_id": principal.tenant_id,
            "client_id": principal.client_id,
            "client_secret": principal.client_secret,
            "subscription_id": emulator.subscription_id,
        }
        log(f"dispatch {args.runs} runs to ACI (emulated)")
        result = dispatch(emulator, block, args.runs)
        if emulator.errors:
            fails.append(f"FAIL: the emulator failed: {emulator.errors[0]}")
    if result["groups_created"] != args.runs or result["groups_in_resource_group"] != args.runs:
        fails.append(
            f"FAIL: {result['groups_created']} container groups created for {args.runs} runs"
        )
    if result["status_exit_codes"] != {"0": args.runs}:
        fails.append(f"FAIL: exit codes {result['status_exit_codes']}, all 0 expected")
    load_end = os.getloadavg()
    rows = [
        [f"dispatch {args.runs} runs: until all have an id", f"{result['seconds']:.2f} s"],
        [f"dispatch {args.runs} runs: submissions/s", f"{result['submissions_per_s']:.1f}"],
        [f"dispatch {args.runs} runs: ARM calls", str(result["arm_calls"])],
        [f"container groups created (aim {args.runs})", str(result["groups_created"])],
        [f"status() of {args.runs} finished runs", f"{result['status_seconds']:.2f} s"],
    ]
    print()
    table = print_table(["metric", "value"], rows)
    for line in fails:
        print(line)
    payload = {
        "benchmark": "bench_aci",
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
    path = write_json("bench-aci", payload)
    print(f"\nwrote {path} ({payload['wall_s']:.0f} s)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
