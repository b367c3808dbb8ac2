"""The Azure provisioner (azure-container-instance:push) against the ARM emulator on
127.0.0.1; a few seconds.

    /work/main/.venv/bin/python benchmarks/bench_azure_provision.py [--repeat 3]

Each pass starts a fresh emulator (one subscription with Microsoft.ContainerInstance not yet
registered, as in a new subscription; its Owner service principal provisions, a second service
principal is the server's) and drives the provisioner the way the CLI does: AzureProvisioner,
preflight, plan, apply into a MemoryRecorder; then again with a fresh provisioner built from the
records (a second `provision-infra`). Calls are counted by the emulator (ARM and Entra token
calls); mutating = calls that ask for a change. The re-run must make 0 mutating calls and
store the secret once. Wall times are the median over the passes.

Exits 1 if a check fails (printed as FAIL lines).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _harness import log, machine_info, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POOL = "bench-aci"
LOCATION = "westeurope"


class Blocks:
    """The CLI's azure-credentials block store, in memory."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}
        self.saves = 0

    def save(self, name: str, data: dict[str, Any]) -> None:
        self.saves += 1
        self.saved[name] = data

    def exists(self, name: str) -> bool:
        return name in self.saved


def one_run(emulator: Any, recorder: Any, blocks: Blocks, values: dict[str, Any]) -> dict[str, Any]:
    from provisioners.azure.adapter import AzureProvisioner

    emulator.clear_calls()
    started = time.perf_counter()
    provisioner = AzureProvisioner(POOL, values, records=recorder.load())
    provisioner.preflight()
    outputs = provisioner.plan(recorder, credentials=blocks).apply()
    provisioner.template_defaults(outputs)
    seconds = time.perf_counter() - started
    calls = emulator.calls
    mutating = [f"{c.method} {c.path}" for c in calls if c.mutating]
    return {
        "seconds": seconds,
        "calls": len(calls),
        "token_calls": sum(1 for c in calls if "/oauth2/" in c.path),
        "mutating_calls": len(mutating),
        "mutating": mutating,
        "by_call": dict(sorted(Counter(f"{c.method} {c.path}" for c in calls).items())),
    }


def one_pass() -> tuple[dict[str, Any], dict[str, Any], int]:
    from provisioners.plan import MemoryRecorder
    from tests.emulators.azure import AzureEmulator

    with AzureEmulator() as emulator:
        os.environ.update(emulator.env())
        emulator.set_provider_registration("Microsoft.ContainerInstance", "NotRegistered")
        server = emulator.create_service_principal("server")
        values = {
            "location": LOCATION,
            "client_id": server.client_id,
            "tenant_id": server.tenant_id,
            "client_secret": server.client_secret,
        }
        recorder, blocks = MemoryRecorder(), Blocks()
        first = one_run(emulator, recorder, blocks, values)
        again = one_run(emulator, recorder, blocks, {**values, "location": None})
        if emulator.errors:
            raise RuntimeError(f"emulator errors: {emulator.errors}")
    return first, again, blocks.saves


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="passes, each on a fresh emulator")
    args = ap.parse_args()
    load_start = os.getloadavg()
    started = time.monotonic()
    fails: list[str] = []
    firsts: list[dict[str, Any]] = []
    agains: list[dict[str, Any]] = []
    # Import the Azure clients outside the clock (a CLI process pays this once).
    from azure.mgmt import authorization, containerregistry, msi, resource  # noqa: F401
    from azure.mgmt.resource import subscriptions  # noqa: F401

    import provisioners.azure.build  # noqa: F401

    saves = 0
    for index in range(args.repeat):
        log(f"pass {index + 1}/{args.repeat}: provision, then again")
        first, again, saves = one_pass()
        firsts.append(first)
        agains.append(again)
        if again["mutating_calls"]:
            fails.append(f"FAIL: re-provision made mutating calls: {again['mutating']}")
        if saves != 1:
            fails.append(f"FAIL: the credentials block was saved {saves} times, not once")
    load_end = os.getloadavg()

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    rows = [
        ["provision, empty subscription: wall (median)", f"{median(firsts, 'seconds'):.2f} s"],
        ["provision, empty subscription: calls / mutating", _calls(firsts[0])],
        ["re-provision: wall (median)", f"{median(agains, 'seconds'):.2f} s"],
        ["re-provision: calls / mutating (aim 0)", _calls(agains[0])],
        ["credentials block saves (aim 1)", str(saves)],
    ]
    print()
    table = print_table(["metric", "value"], rows)
    for line in fails:
        print(line)
    payload = {
        "benchmark": "bench_azure_provision",
        "date": time.strftime("%Y-%m-%d"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "provision_empty": firsts,
        "provision_again": agains,
        "fails": fails,
        "wall_s": time.monotonic() - started,
        "table": table,
    }
    path = write_json("bench-azure-provision", payload)
    print(f"\nwrote {path} ({payload['wall_s']:.0f} s)")
    return 1 if fails else 0


def _calls(run: dict[str, Any]) -> str:
    return f"{run['calls']} (of which {run['token_calls']} token) / {run['mutating_calls']}"


if __name__ == "__main__":
    sys.exit(main())
