"""Code bundles: deploying a small project to a managed pool, redeploying it, running it; ~15 s.

    /work/main/.venv/bin/python benchmarks/bench_bundles.py [--modules 40] [--runs 5]

An EmbeddedServer (SQLite, its own dispatcher) with a managed pool, and a generated project:
`--modules` modules of ~2 KB each plus a flow, with a .git folder, a virtual environment and
.gitignored build output that must stay out of the bundle. Measured: wall time of the first
deploy (pack, HEAD, PUT, upsert) and the bytes it uploaded; the same for a redeploy with no
change (aim: 0 bytes); and for `--runs` runs of the deployment, the seconds from creating the
run until RUNNING (the sandbox started, the engine downloaded and unpacked the bundle and
loaded the flow) and until COMPLETED; and, for comparison, until RUNNING for a deployment of
the same flow that reads the project directory in place (`bundle=False`). Then the same with
a requirements.txt (one local wheel, by a file:// reference: no network): `deploy` moves it into
the managed pool's environment cache, so the first run builds the environment and the others
find it cached; measured: that first run, and the cached ones, to RUNNING and to COMPLETED.

Exits 1 if a check fails (printed as FAIL lines).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import log, machine_info, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POOL = "bench-managed"
FLOW = """
from push_pools import flow
import pkg

@flow
def bundled() -> int:
    return pkg.total()
"""


def make_project(root: Path, modules: int) -> Path:
    project = root / "project"
    package = project / "pkg"
    package.mkdir(parents=True)
    names = [f"mod_{i:03d}" for i in range(modules)]
    for i, name in enumerate(names):
        # Hashes, not repeated text: real code does not compress a hundredfold.
        filler = "\n".join(
            "# " + hashlib.sha256(f"{name}:{n}".encode()).hexdigest() for n in range(30)
        )
        (package / f"{name}.py").write_text(f"VALUE = {i}\n{filler}\n")
    imports = "".join(f"from pkg import {name}\n" for name in names)
    (package / "__init__.py").write_text(
        imports + "def total():\n    return sum([" + ", ".join(f"{n}.VALUE" for n in names) + "])\n"
    )
    (project / "flows.py").write_text(FLOW)
    (project / ".gitignore").write_text("build/\n")
    for junk in (".git/objects/pack.bin", "venv/lib/big.so", "build/out.bin"):
        (project / junk).parent.mkdir(parents=True, exist_ok=True)
        (project / junk).write_bytes(b"\0" * 200_000)
    (project / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return project


def add_requirement(root: Path, project: Path) -> Path:
    """A copy of the project whose flow imports a dependency listed in requirements.txt."""
    import shutil
    import zipfile

    wheels = root / "wheels"
    wheels.mkdir()
    wheel = wheels / "benchdep-1.0-py3-none-any.whl"
    info = "benchdep-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("benchdep.py", "BONUS = 1\n")
        archive.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: benchdep\nVersion: 1.0\n"
        )
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "")
    copy = root / "project-with-env"
    shutil.copytree(project, copy)
    (copy / "requirements.txt").write_text(f"benchdep @ {wheel.as_uri()}\n")
    # Imported when the flow runs: the deploying machine need not have the dependency.
    (copy / "flows.py").write_text(
        FLOW.replace(
            "    return pkg.total()",
            "    import benchdep\n\n    return pkg.total() + benchdep.BONUS - 1",
        )
    )
    return copy


def deploy(
    client: Any, project: Path, puts: list[int], bundle: bool = True, name: str | None = None
) -> tuple[float, int, Any]:
    from push_pools.deploy.entrypoints import load_flow

    before = sum(puts)
    started = time.perf_counter()
    flow = load_flow("flows.py:bundled", project)
    name = name or ("bench" if bundle else "bench-local")
    deployment = flow.deploy(
        name, POOL, source_dir=project, client=client, quiet=True, bundle=bundle
    )
    return time.perf_counter() - started, sum(puts) - before, deployment


def run_once(client: Any, deployment_id: str) -> tuple[float, float]:
    """Seconds from the run's creation to RUNNING and to COMPLETED, by the server's own state
    timestamps (no polling interval in them)."""
    from datetime import datetime

    run = client.create_run(deployment_id, {})
    deadline = time.monotonic() + 180  # a first run may build its environment
    while time.monotonic() < deadline:
        current = client.get_run(run["id"])
        if current["state"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            if current["state"] != "COMPLETED":
                raise RuntimeError(f"run {current['state']}: {current['state_message']}")
            states = client.run_states(run["id"])
            at = {s["type"]: datetime.fromisoformat(s["timestamp"]) for s in states}
            created = datetime.fromisoformat(states[0]["timestamp"])
            return (
                (at["RUNNING"] - created).total_seconds(),
                (at["COMPLETED"] - created).total_seconds(),
            )
        time.sleep(0.05)
    raise RuntimeError("run did not finish in 180 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import os

    from push_pools.client import Client
    from push_pools.embedded import EmbeddedServer

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-bundles-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # managed runs may drop to another user: keep the code readable
        # The managed pool's environment cache starts empty, and goes with the run.
        os.environ["PUSH_POOLS_HOME"] = str(root / "home")
        project = make_project(root, args.modules)
        with_env = add_requirement(root, project)
        server = EmbeddedServer(database_url=f"sqlite:///{root}/store.db").start()
        puts: list[int] = []
        try:
            with Client(server.api_url) as client:

                def count(request: Any) -> None:
                    if request.method == "PUT":
                        puts.append(len(request.content))

                client._http.event_hooks["request"].append(count)
                client.create_work_pool({"name": POOL, "type": "managed"})
                log("first deploy")
                first_s, first_bytes, deployment = deploy(client, project, puts)
                log("redeploy, nothing changed")
                again_s, again_bytes, _ = deploy(client, project, puts)
                if again_bytes != 0:
                    failures.append(f"redeploy uploaded {again_bytes} bytes, expected 0")
                if first_bytes > 100_000:
                    failures.append(f"bundle of {first_bytes} bytes: ignored files got in")
                _, _, local = deploy(client, project, puts, bundle=False)
                log(f"{args.runs} runs each, bundled and in place, alternating (fair warm-up)")
                timings, baseline = [], []
                for _ in range(args.runs):
                    timings.append(run_once(client, deployment.id))
                    baseline.append(run_once(client, local.id))
                _, _, env_deployment = deploy(client, with_env, puts, name="bench-env")
                packages = env_deployment.job_variables.get("pip_packages")
                if not packages:
                    failures.append("requirements.txt did not go to the environment cache")
                log("a run that builds the environment, then runs that find it cached")
                cold = run_once(client, env_deployment.id)
                cached = [run_once(client, env_deployment.id) for _ in range(args.runs)]
        finally:
            server.stop()

    to_running = [t[0] for t in timings]
    to_done = [t[1] for t in timings]
    local_running = [t[0] for t in baseline]
    rows = [
        ["first deploy", f"{first_s:.3f} s", f"{first_bytes:,} bytes uploaded"],
        ["redeploy, unchanged", f"{again_s:.3f} s", f"{again_bytes:,} bytes uploaded"],
        [
            "create -> RUNNING (median)",
            f"{statistics.median(to_running):.2f} s",
            f"max {max(to_running):.2f} s",
        ],
        [
            "create -> COMPLETED (median)",
            f"{statistics.median(to_done):.2f} s",
            f"max {max(to_done):.2f} s",
        ],
        [
            "create -> RUNNING, no bundle (median)",
            f"{statistics.median(local_running):.2f} s",
            f"max {max(local_running):.2f} s",
        ],
        [
            "requirements: first run, builds the env",
            f"{cold[0]:.2f} s to RUNNING",
            f"{cold[1]:.2f} s to COMPLETED",
        ],
        [
            "requirements, cached env: -> RUNNING (median)",
            f"{statistics.median(c[0] for c in cached):.2f} s",
            f"max {max(c[0] for c in cached):.2f} s",
        ],
        [
            "requirements, cached env: -> COMPLETED (median)",
            f"{statistics.median(c[1] for c in cached):.2f} s",
            f"max {max(c[1] for c in cached):.2f} s",
        ],
    ]
    print_table(["figure", "value", "detail"], rows)
    path = write_json(
        "bundles",
        {
            "machine": machine_info(),
            "modules": args.modules,
            "first_deploy_s": first_s,
            "first_deploy_bytes": first_bytes,
            "redeploy_s": again_s,
            "redeploy_bytes": again_bytes,
            "create_to_running_s": to_running,
            "create_to_completed_s": to_done,
            "create_to_running_without_bundle_s": local_running,
            "env_build_run_s": list(cold),
            "cached_env_create_to_running_s": [c[0] for c in cached],
            "cached_env_create_to_completed_s": [c[1] for c in cached],
            "failures": failures,
        },
    )
    log(f"wrote {path}")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
