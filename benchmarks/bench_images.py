"""Image deploys: `flow.deploy(image=DeploymentImage(..., dockerfile="auto"))` against the Docker
emulator; ~10 s.

    PYTHONPATH=. /work/main/.venv/bin/python benchmarks/bench_images.py [--modules 40] [--repeat 5]

An EmbeddedServer (SQLite) with a docker pool, the Docker emulator (tests/emulators/docker) as
the engine, and a generated project: `--modules` modules of ~2 KB plus a flow and a
requirements.txt, with a .git folder, a virtual environment and data that .dockerignore keeps
out. Each deploy builds the image (generated Dockerfile, this installation's wheel in the
context), pushes it to a registry host and upserts the deployment pinned to the digest.
Measured per deploy: wall time, the time the emulator spent answering requests (its
`handle_api`, timed around each call), wall minus that (our code, the SDK and the HTTP
transfer), and the bytes of the build context the SDK sent; separately, the time to make the
context (wheel, Dockerfile, tar) alone.

Exits 1 if a check fails (printed as FAIL lines).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import log, machine_info, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POOL = "bench-docker"
IMAGE = "registry.bench.example/acme/flows"
FLOW = """
from push_pools import flow
import pkg

@flow
def boxed() -> int:
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
    (package / "__init__.py").write_text(
        "".join(f"from pkg import {name}\n" for name in names)
        + "def total():\n    return sum(["
        + ", ".join(f"{n}.VALUE" for n in names)
        + "])\n"
    )
    (project / "flows.py").write_text(FLOW)
    (project / "requirements.txt").write_text("six==1.16.0\n")
    (project / ".dockerignore").write_text(".git\nvenv\ndata\n")
    for junk in (".git/objects/pack.bin", "venv/lib/big.so", "data/big.csv"):
        (project / junk).parent.mkdir(parents=True, exist_ok=True)
        (project / junk).write_bytes(b"\0" * 200_000)
    return project


class EngineClock:
    """Seconds the emulator spent inside its request handler, summed over all threads."""

    def __init__(self, server: Any) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()
        inner: Callable[[Any], Any] = server.handle_api

        def timed(request: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(request)
            finally:
                with self._lock:
                    self.seconds += time.perf_counter() - started

        server.handle_api = timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from push_pools import DeploymentImage, pool_types
    from push_pools.client import Client
    from push_pools.deploy.entrypoints import load_flow
    from push_pools.deploy.images import build_context
    from push_pools.embedded import EmbeddedServer
    from push_pools.executors.docker.template import POOL_TYPE
    from tests.emulators.docker import DockerEmulator

    if POOL_TYPE.name not in pool_types.names():  # an install that predates the entry point
        pool_types.register(POOL_TYPE)
    failures: list[str] = []
    deploys: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp, DockerEmulator() as engine:
        os.environ["DOCKER_HOST"] = engine.docker_host
        for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
            os.environ.pop(name, None)
        root = Path(tmp)
        project = make_project(root, args.modules)
        os.chdir(project)
        clock = EngineClock(engine._server)
        server = EmbeddedServer(database_url=f"sqlite:///{root}/store.db").start()
        try:
            with Client(server.api_url) as client:
                client.create_work_pool({"name": POOL, "type": "docker"})
                flow = load_flow("flows.py:boxed", project)
                image = DeploymentImage(IMAGE, tag="v1", dockerfile="auto")
                for attempt in range(args.repeat):
                    log(f"deploy {attempt + 1}/{args.repeat}")
                    engine_before, requests_before = clock.seconds, len(engine.requests)
                    started = time.perf_counter()
                    deployment = flow.deploy("bench", POOL, image=image, client=client, quiet=True)
                    wall = time.perf_counter() - started
                    in_engine = clock.seconds - engine_before
                    sent = [
                        r.body_size
                        for r in engine.requests[requests_before:]
                        if r.method == "POST" and r.path == "/build"
                    ]
                    deploys.append(
                        {
                            "wall_s": wall,
                            "engine_s": in_engine,
                            "ours_s": wall - in_engine,
                            "context_bytes": float(sum(sent)),
                        }
                    )
                    pinned = str(deployment.job_variables.get("image", ""))
                    if not pinned.startswith(f"{IMAGE}@sha256:"):
                        failures.append(f"deployment image {pinned!r} is not the pushed digest")
                context = engine.builds[-1].context
                for left_out in (".git/objects/pack.bin", "venv/lib/big.so", "data/big.csv"):
                    if left_out in context:
                        failures.append(f"{left_out} is in the build context")
        finally:
            server.stop()
        prepare = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            build_context(project, "auto")
            prepare.append(time.perf_counter() - started)

    def median(key: str) -> float:
        return statistics.median(d[key] for d in deploys)

    first = deploys[0]
    rows = [
        [
            "deploy wall time",
            f"{first['wall_s']:.3f} s first",
            f"median {median('wall_s'):.3f} s",
        ],
        [
            "  in the emulator",
            f"{first['engine_s']:.3f} s first",
            f"median {median('engine_s'):.3f} s",
        ],
        [
            "  ours (wall - emulator)",
            f"{first['ours_s']:.3f} s first",
            f"median {median('ours_s'):.3f} s",
        ],
        [
            "  making the context alone",
            f"{prepare[0]:.3f} s first",
            f"median {statistics.median(prepare):.3f} s",
        ],
        ["build context sent", f"{int(first['context_bytes']):,} bytes", ""],
    ]
    print_table(["figure", "value", "detail"], rows)
    path = write_json(
        "images",
        {
            "machine": machine_info(),
            "modules": args.modules,
            "deploys": deploys,
            "context_prepare_s": prepare,
            "failures": failures,
        },
    )
    log(f"wrote {path}")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
