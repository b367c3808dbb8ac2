"""The GCP provisioner (cloud-run:push) against the GCP emulator on 127.0.0.1; about 20 s.

    /work/main/.venv/bin/python benchmarks/bench_gcp_provision.py [--repeat 3]

Each pass starts a fresh emulator (one project whose Cloud Run, Artifact Registry and IAM APIs
are off, as in a new project) and drives the provisioner the way the CLI does: GcpProvisioner
(credentials from a service-account key file, GOOGLE_APPLICATION_CREDENTIALS), preflight,
plan, apply, into a MemoryRecorder; then again with a fresh provisioner built from the records
(a second `provision-infra`). Calls are counted by the emulator (REST, gRPC and OAuth token
calls); mutating = calls that ask for a change. The re-run must make 0 mutating calls and no
second key. Wall times are the median over the passes.

Exits 1 if a check fails (printed as FAIL lines).
"""

from __future__ import annotations

import argparse
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

PROJECT = "bench-proj"
POOL = "bench-cr"
REGION = "us-central1"


class Blocks:
    """The CLI's gcp-credentials block store, in memory."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}

    def save(self, name: str, data: dict[str, Any]) -> None:
        self.saved[name] = data

    def exists(self, name: str) -> bool:
        return name in self.saved


def one_run(emulator: Any, recorder: Any, blocks: Blocks) -> dict[str, Any]:
    from provisioners.gcp.adapter import GcpProvisioner

    emulator.calls.clear()
    started = time.perf_counter()
    provisioner = GcpProvisioner(
        POOL, {"project": PROJECT, "region": REGION, "key": True}, records=recorder.load()
    )
    provisioner.preflight()
    outputs = provisioner.plan(recorder, credentials=blocks).apply()
    provisioner.template_defaults(outputs)
    seconds = time.perf_counter() - started
    calls = emulator.calls.snapshot()
    mutating = [f"{c.method} {c.path}" for c in calls if c.mutating]
    return {
        "seconds": seconds,
        "calls": len(calls),
        "token_calls": sum(1 for c in calls if c.protocol == "oauth"),
        "mutating_calls": len(mutating),
        "mutating": mutating,
        "by_call": dict(sorted(Counter(f"{c.method} {c.path}" for c in calls).items())),
    }


def one_pass(tmp: Path) -> tuple[dict[str, Any], dict[str, Any], int]:
    from provisioners.plan import MemoryRecorder
    from tests.emulators.gcp import GcpEmulator

    with GcpEmulator() as emulator:
        key = emulator.create_key_file(tmp / "owner.json", project=PROJECT)
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(key)
        os.environ["PUSH_POOLS_GCP_ENDPOINT"] = emulator.endpoint
        emulator.require_enabled_services = True
        recorder, blocks = MemoryRecorder(), Blocks()
        first = one_run(emulator, recorder, blocks)
        again = one_run(emulator, recorder, blocks)
        control = f"pp-{POOL}-cp@{PROJECT}.iam.gserviceaccount.com"
        keys = len(emulator.service_accounts[control].user_keys())
        if emulator.errors:
            raise RuntimeError(f"emulator errors: {emulator.errors}")
    return first, again, keys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="passes, each on a fresh emulator")
    args = ap.parse_args()
    load_start = os.getloadavg()
    started = time.monotonic()
    fails: list[str] = []
    firsts: list[dict[str, Any]] = []
    agains: list[dict[str, Any]] = []
    for name in ("CLOUDSDK_RUN_REGION", "CLOUDSDK_COMPUTE_REGION", "GOOGLE_CLOUD_PROJECT"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="bench-gcp-") as tmp:
        os.environ["CLOUDSDK_CONFIG"] = str(Path(tmp) / "gcloud")
        # Import the Google clients outside the clock (a CLI process pays this once).
        from google.cloud import (  # noqa: F401
            artifactregistry_v1,
            iam_admin_v1,
            resourcemanager_v3,
            service_usage_v1,
        )

        import provisioners.gcp.build  # noqa: F401

        for index in range(args.repeat):
            log(f"pass {index + 1}/{args.repeat}: provision, then again")
            first, again, keys = one_pass(Path(tmp) / str(index))
            firsts.append(first)
            agains.append(again)
            if again["mutating_calls"]:
                fails.append(f"FAIL: re-provision made mutating calls: {again['mutating']}")
            if keys != 1:
                fails.append(f"FAIL: the control-plane account has {keys} keys, not 1")
    load_end = os.getloadavg()

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    rows = [
        ["provision, empty project: wall (median)", f"{median(firsts, 'seconds'):.2f} s"],
        ["provision, empty project: calls / mutating", _calls(firsts[0])],
        ["re-provision: wall (median)", f"{median(agains, 'seconds'):.2f} s"],
        ["re-provision: calls / mutating (aim 0)", _calls(agains[0])],
        ["keys of the control-plane account (aim 1)", str(keys)],
    ]
    print()
    table = print_table(["metric", "value"], rows)
    for line in fails:
        print(line)
    payload = {
        "benchmark": "bench_gcp_provision",
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
    path = write_json("bench-gcp-provision", payload)
    print(f"\nwrote {path} ({payload['wall_s']:.0f} s)")
    return 1 if fails else 0


def _calls(run: dict[str, Any]) -> str:
    return f"{run['calls']} (of which {run['token_calls']} token) / {run['mutating_calls']}"


if __name__ == "__main__":
    sys.exit(main())
