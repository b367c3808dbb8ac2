"""Dispatch figures for push and managed pools: throughput, latency, managed cold start.

    /work/main/.venv/bin/python benchmarks/bench_dispatch.py [--runs 5000] [--repeat 3]
        [--postgres-url URL | --with-postgres] [--only throughput|latency|cold-start] [--profile]

1. throughput: N Scheduled runs of a managed pool, due now, inserted (not timed) into a fresh
   store; a Dispatcher whose executor does nothing; seconds from the first dispatch_once() until
   the call that submitted the last run returns (every run PENDING with an infrastructure id,
   checked afterwards); median of --repeat passes, each on a fresh store.
2. latency: an EmbeddedServer (the real server, with its dispatcher thread) and a pool of a
   type registered here whose executor only records when submit() is called; runs created one at
   a time through the HTTP API; the run's `created` timestamp -> submit() called.
3. cold start: a real managed pool on an EmbeddedServer; POST a run of a flow whose first line
   records time.time() -> that time. With no pip_packages (the server's interpreter), with a new
   pip_packages set (an environment is built) and with the same set again (cached); each with
   runs isolated under bubblewrap (PUSH_POOLS_MANAGED_ISOLATION=bwrap) and unisolated (none).

Each section runs on SQLite and, with --postgres-url or --with-postgres (a throwaway server
from scripts/postgres.sh, stopped at the end), on PostgreSQL; every section gets a fresh store
(a new SQLite file, or a new database created on the PostgreSQL server and dropped after).
Prints a table on stdout (progress on stderr), writes benchmarks/results/bench-dispatch-<date>.json
and exits 1 if any step failed. A figure below its aim is reported, not a failure; when SQLite
throughput is below its aim (or with --profile) a second, profiled pass prints its top costs.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import math
import os
import pstats
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _harness import (
    BENCH_DIR,
    BenchError,
    log,
    machine_info,
    parse_ts,
    print_table,
    signals_as_interrupt,
    temp_home,
    write_json,
)

REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:  # the product, when this runs with a python that lacks it
    sys.path.append(str(REPO))

from push_pools import pool_types  # noqa: E402
from push_pools.executors.base import (  # noqa: E402
    BaseExecutor,
    InfrastructureState,
    InfrastructureStatus,
    Submission,
)

SECTIONS = ("throughput", "latency", "cold-start")
THROUGHPUT_AIM = 1000.0  # runs claimed and submitted per second, SQLite
LATENCY_AIM_S = 0.050  # median, created -> submit
COLD_AIM_S = 0.5  # cached environment, POST -> first line of the flow
COLD_ISOLATED_AIM_S = 0.35  # the same, with runs isolated under bubblewrap
# PUSH_POOLS_MANAGED_ISOLATION for each cold-start pass, and the key of its figures.
COLD_MODES = {"bwrap": "cold", "none": "cold_unisolated"}
THROUGHPUT_TIMEOUT_S = 900.0
INSERT_CHUNK = 500
LATENCY_WARMUP = 5
LATENCY_SPACING_S = 0.020
LATENCY_WAIT_S = 60.0
COLD_RUN_TIMEOUT_S = 60.0
COLD_NEW_ENV_TIMEOUT_S = 900.0
NEW_ENV_PACKAGES = ["six==1.16.0"]
NOOP_TYPE = "bench-noop"
PROFILE_TOP = 25
# Nobody listens there: the throughput dispatcher submits to a no-op, nothing calls the API.
UNREACHABLE_API = "http://127.0.0.1:9/api"

FLOW_SOURCE = """\
import sys
import time

from push_pools import flow


@flow
def stamp() -> dict:
    # Returned, not written to a file: an isolated run can write only into its own sandbox.
    return {"t": time.time(), "executable": sys.executable, "prefix": sys.prefix}
"""


# --------------------------------------------------------------------------- no-op executor


class NoopExecutor(BaseExecutor):
    """An Executor that starts nothing: submit() records when it was called, status() RUNNING.

    Records live on the class, shared by every instance the dispatchers make.
    """

    lock = threading.Lock()
    # run id -> (time.perf_counter(), time.time()) of the submit() call
    records: dict[str, tuple[float, float]] = {}

    def __init__(self, **_options: Any) -> None:
        pass

    @classmethod
    def reset(cls) -> None:
        with cls.lock:
            cls.records.clear()

    @classmethod
    def snapshot(cls) -> dict[str, tuple[float, float]]:
        with cls.lock:
            return dict(cls.records)

    def submit(self, submission: Submission) -> str:
        stamp = (time.perf_counter(), time.time())
        with self.lock:
            self.records.setdefault(submission.flow_run_id, stamp)
        return submission.infrastructure_name

    def status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        running = InfrastructureStatus(InfrastructureState.RUNNING)
        return {i: running for i in infrastructure_ids}

    def logs(self, infrastructure_id: str, limit: int = 50) -> list[str]:
        return []

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        pass

    def cleanup(self, infrastructure_id: str) -> None:
        pass


def register_noop_type() -> None:
    from push_pools.executors.managed.template import default_template

    pool_types.register(
        pool_types.PoolType(
            name=NOOP_TYPE,
            description="benchmark: the managed template, an executor that starts nothing",
            default_template=default_template,
            # This module under whatever name it was loaded as (`__main__` when run as a
            # script), so the dispatcher's instances share the class whose records we read.
            executor=f"{NoopExecutor.__module__}:{NoopExecutor.__name__}",
            is_push=True,
        )
    )


# --------------------------------------------------------------------------- stores


class Backend:
    """Where fresh stores come from: SQLite files in a temp dir, or databases on one server."""

    def __init__(self, label: str, root: Path, postgres_url: str | None = None) -> None:
        self.label = label
        self.root = root
        self.postgres_url = postgres_url

    @contextlib.contextmanager
    def fresh_url(self, name: str) -> Iterator[str]:
        if self.postgres_url is None:
            path = self.root / f"{name}-{secrets.token_hex(3)}.db"
            try:
                yield f"sqlite:///{path}"
            finally:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        with fresh_postgres_database(self.postgres_url, name) as url:
            yield url


def normalize_postgres_url(url: str) -> str:
    # Same rule as push_pools.settings: psycopg 3 is the driver the product ships.
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@contextlib.contextmanager
def fresh_postgres_database(server_url: str, name: str) -> Iterator[str]:
    """A new database on the server for one section, dropped afterwards (nothing else touched)."""
    from sqlalchemy import create_engine, make_url, text

    db_name = f"bench_dispatch_{name.replace('-', '_')}_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{db_name}"'))
    except Exception as exc:
        admin.dispose()
        raise BenchError(f"cannot create a database on {server_url}: {exc}") from exc
    try:
        yield make_url(server_url).set(database=db_name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        except Exception as exc:  # noqa: BLE001 - teardown goes on; say what was left
            log(f"could not drop database {db_name}: {exc}")
        admin.dispose()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """scripts/postgres.sh start in a temp dir; stopped and removed on exit, also on failure."""
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="push-pools-bench-pg-"))
    script = REPO / "scripts" / "postgres.sh"
    try:
        try:
            res = subprocess.run(
                ["bash", str(script), "start", str(data)],
                capture_output=True,
                text=True,
                timeout=600,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError("scripts/postgres.sh start did not finish in 600 s") from exc
        url = next(
            (
                line.split("=", 1)[1].strip()
                for line in res.stdout.splitlines()
                if line.startswith("export PUSH_POOLS_TEST_DATABASE_URL=")
            ),
            None,
        )
        if res.returncode != 0 or not url:
            raise BenchError(
                f"scripts/postgres.sh start exited {res.returncode}: "
                f"{(res.stdout + res.stderr).strip()[-800:]}"
            )
        yield url
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run(
                ["bash", str(script), "stop", str(data)],
                capture_output=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
            )
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def push_pools_home(path: Path) -> Iterator[Path]:
    """PUSH_POOLS_HOME for an in-process server (the managed executor's root derives from it)."""
    path.mkdir(parents=True, exist_ok=True)
    old = os.environ.get("PUSH_POOLS_HOME")
    os.environ["PUSH_POOLS_HOME"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("PUSH_POOLS_HOME", None)
        else:
            os.environ["PUSH_POOLS_HOME"] = old


def isolate_environment() -> None:
    """The caller's PUSH_POOLS_* settings (API key, database, home) must not reach our servers."""
    for name in [k for k in os.environ if k.startswith("PUSH_POOLS_")]:
        os.environ.pop(name, None)


# --------------------------------------------------------------------------- 1. throughput


def seed_runs(url: str, runs: int, pool_type: str = "managed") -> tuple[Any, str]:
    """A migrated store with one pool, one deployment and `runs` Scheduled runs due now."""
    from push_pools.models import DeploymentCreate, WorkPoolCreate
    from push_pools.store import deployments as deployment_store
    from push_pools.store import pools as pool_store
    from push_pools.store.db import Store
    from push_pools.store.tables import utcnow

    store = Store(url)
    store.migrate()
    with store.session() as session:
        pool = pool_store.create_pool(session, WorkPoolCreate(name="bench", type=pool_type))
        deployment, _ = deployment_store.upsert_deployment(
            session,
            DeploymentCreate(
                name="bench",
                flow_name="trivial",
                entrypoint="flow.py:trivial",
                work_pool_name="bench",
            ),
        )
        pool_id, deployment_id = pool.id, deployment.id
    due = utcnow() - dt.timedelta(seconds=1)
    from push_pools.store.tables import Deployment

    for start in range(0, runs, INSERT_CHUNK):
        with store.session() as session:
            deployment = session.get(Deployment, deployment_id)
            for _ in range(min(INSERT_CHUNK, runs - start)):
                deployment_store.insert_run(
                    session,
                    deployment,
                    parameters={},
                    job_variables={},
                    scheduled_time=due,
                    tags=[],
                )
    return store, pool_id


def count_submitted(store: Any, pool_id: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from push_pools.store.tables import FlowRun

    with store.session() as session:
        rows = session.execute(
            select(FlowRun.state_type, FlowRun.infrastructure_id.is_not(None), func.count())
            .where(FlowRun.work_pool_id == pool_id)
            .group_by(FlowRun.state_type, FlowRun.infrastructure_id.is_not(None))
        ).all()
    counts: dict[str, int] = {}
    for state, has_infra, n in rows:
        key = f"{state}{'+infra' if has_infra else ''}"
        counts[key] = counts.get(key, 0) + n
    return counts


def dispatch_throughput(
    backend: Backend, runs: int, batch_size: int, profile: bool = False
) -> dict[str, Any]:
    from push_pools.dispatch import Dispatcher

    with backend.fresh_url("throughput") as url:
        t_seed = time.monotonic()
        store, pool_id = seed_runs(url, runs)
        seed_s = time.monotonic() - t_seed
        log(f"  {runs} runs inserted in {seed_s:.1f} s (not timed)")
        # Lazily imported by the first dispatch_once (credentials resolution): a one-time
        # process cost, not a per-run one, so it is paid before the clock starts.
        import push_pools.blocks  # noqa: F401
        import push_pools.store.blocks  # noqa: F401

        NoopExecutor.reset()
        executor = NoopExecutor()
        dispatcher = Dispatcher(
            store,
            api_url=UNREACHABLE_API,
            name="bench-dispatcher",
            batch_size=batch_size,
            executor_factory=lambda _pool_type: executor,
        )
        profiler = cProfile.Profile() if profile else None
        calls: list[tuple[int, float]] = []
        total = leftover = 0
        try:
            deadline = time.monotonic() + THROUGHPUT_TIMEOUT_S
            if profiler is not None:
                profiler.enable()
            t0 = time.perf_counter()
            # The clock stops when the call that submitted the last run returns.
            while total < runs and time.monotonic() < deadline:
                t_call = time.perf_counter()
                submitted = dispatcher.dispatch_once()
                calls.append((submitted, time.perf_counter() - t_call))
                total += submitted
                if submitted == 0:
                    break
            elapsed = time.perf_counter() - t0
            if profiler is not None:
                profiler.disable()
            # Not timed: nothing may be left to claim (a run claimed twice would show here too).
            leftover = dispatcher.dispatch_once() if total == runs else 0
        finally:
            dispatcher.stop()
        counts = count_submitted(store, pool_id)
        store.dispose()
    done = counts.get("PENDING+infra", 0)
    result: dict[str, Any] = {
        "backend": backend.label,
        "runs": runs,
        "batch_size": batch_size,
        "seconds": elapsed,
        "runs_per_s": runs / elapsed if done == runs else None,
        "dispatch_once_calls": [{"submitted": n, "seconds": s} for n, s in calls],
        "final_counts": counts,
        "executor_submits": len(NoopExecutor.snapshot()),
        "submitted_by_a_further_call": leftover,
        "insert_seconds": seed_s,
    }
    if done != runs or leftover or total != runs:
        raise BenchError(
            f"throughput ({backend.label}, batch {batch_size}): after {len(calls)} dispatch_once "
            f"calls ({elapsed:.1f} s) {done}/{runs} runs are PENDING with an infrastructure id "
            f"({total} reported submitted, {leftover} more by a further call); states: {counts}"
        )
    if profiler is not None:
        result["profile"] = profile_summary(profiler)
    return result


def throughput_median(backend: Backend, runs: int, batch_size: int, repeat: int) -> dict[str, Any]:
    """`repeat` passes, each on a fresh store; the pass with the median runs/s, and all of them."""
    passes = []
    for i in range(repeat):
        passes.append(dispatch_throughput(backend, runs, batch_size))
        log(f"  pass {i + 1}/{repeat}: {passes[-1]['runs_per_s']:.0f} runs/s")
    ordered = sorted(passes, key=lambda p: p["runs_per_s"])
    return {
        **ordered[(len(ordered) - 1) // 2],
        "passes": repeat,
        "passes_runs_per_s": [p["runs_per_s"] for p in passes],
        "passes_seconds": [p["seconds"] for p in passes],
    }


def _where(func_key: tuple[str, int, str]) -> str:
    path, line, name = func_key
    if path == "~":
        return name  # a builtin: "<method 'execute' of 'sqlite3.Cursor' objects>"
    for marker in ("/site-packages/", f"{REPO}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}({name})"


def profile_summary(profiler: cProfile.Profile) -> dict[str, Any]:
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = [
        {"function": _where(key), "calls": nc, "tottime_s": tt, "cumtime_s": ct}
        for key, (_cc, nc, tt, ct, _callers) in entries.items()
    ]
    by_tot = sorted(rows, key=lambda r: r["tottime_s"], reverse=True)[:PROFILE_TOP]
    by_cum = sorted(rows, key=lambda r: r["cumtime_s"], reverse=True)[:PROFILE_TOP]
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(PROFILE_TOP)
    return {"total_s": total, "by_tottime": by_tot, "by_cumtime": by_cum, "text": text.getvalue()}


def print_profile(label: str, summary: dict[str, Any]) -> None:
    out = sys.stderr
    print(f"\n--- profile of the dispatch loop ({label}), {summary['total_s']:.2f} s", file=out)
    for title, key in (("own time", "by_tottime"), ("cumulative", "by_cumtime")):
        print(f"top {PROFILE_TOP} by {title}:", file=out)
        print(f"  {'calls':>9} {'own s':>8} {'cum s':>8}  function", file=out)
        for row in summary[key]:
            print(
                f"  {row['calls']:>9} {row['tottime_s']:>8.3f} {row['cumtime_s']:>8.3f}  "
                f"{row['function']}",
                file=out,
            )
    out.flush()


# --------------------------------------------------------------------------- servers


@contextlib.contextmanager
def embedded_server(url: str) -> Iterator[Any]:
    from push_pools.embedded import EmbeddedServer

    server = EmbeddedServer(database_url=url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was really measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# --------------------------------------------------------------------------- 2. latency


def wait_submitted(run_ids: list[str], timeout: float) -> dict[str, tuple[float, float]]:
    deadline = time.monotonic() + timeout
    while True:
        records = NoopExecutor.snapshot()
        if all(r in records for r in run_ids) or time.monotonic() > deadline:
            return records
        time.sleep(0.01)


def dispatch_latency(backend: Backend, home: Path, n: int) -> dict[str, Any]:
    from push_pools.client import Client

    register_noop_type()
    NoopExecutor.reset()
    with (
        backend.fresh_url("latency") as url,
        push_pools_home(home / f"latency-{backend.label.lower()}"),
        embedded_server(url) as server,
        Client(server.api_url) as client,
    ):
        client.create_work_pool({"name": "noop", "type": NOOP_TYPE})
        deployment = client.upsert_deployment(
            {
                "name": "bench",
                "flow_name": "trivial",
                "entrypoint": "flow.py:trivial",
                "work_pool_name": "noop",
            }
        )
        # Warm-up, not measured: the dispatcher thread loads the executor and imports lazily.
        warm = [client.create_run(deployment["id"], {})["id"] for _ in range(LATENCY_WARMUP)]
        if len(wait_submitted(warm, LATENCY_WAIT_S)) < len(warm):
            raise BenchError(f"latency ({backend.label}): warm-up runs were never submitted")
        created: dict[str, float] = {}
        returned: dict[str, float] = {}
        post_s: list[float] = []
        for _ in range(n):
            t_post = time.perf_counter()
            run = client.create_run(deployment["id"], {})
            returned[run["id"]] = time.time()
            post_s.append(time.perf_counter() - t_post)
            created[run["id"]] = parse_ts(run["created"]).timestamp()
            time.sleep(LATENCY_SPACING_S)
        records = wait_submitted(list(created), LATENCY_WAIT_S)
    missing = [r for r in created if r not in records]
    if missing:
        raise BenchError(
            f"latency ({backend.label}): {len(missing)}/{n} runs not submitted "
            f"{LATENCY_WAIT_S:.0f} s after the last was created"
        )
    latencies = [records[r][1] - created[r] for r in created]
    after_return = [records[r][1] - returned[r] for r in created]
    return {
        "backend": backend.label,
        "runs": n,
        "spacing_s": LATENCY_SPACING_S,
        "warmup_runs": LATENCY_WARMUP,
        "created_to_submit_s": latencies,
        "median_s": statistics.median(latencies),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies),
        "min_s": min(latencies),
        # Negative when submit() ran before the POST's response reached the client.
        "post_return_to_submit_median_s": statistics.median(after_return),
        "post_median_s": statistics.median(post_s),
        "post_p99_s": percentile(post_s, 99),
    }


# --------------------------------------------------------------------------- 3. cold start


def deploy_stamp_flow(client: Any, project: Path, name: str, job_variables: dict[str, Any]) -> str:
    from push_pools.deploy.entrypoints import load_flow

    entrypoint = "flows.py:stamp"
    flow = load_flow(entrypoint, project)
    body = {
        "name": name,
        "flow_name": flow.name,
        "entrypoint": entrypoint,
        "work_pool_name": "managed",
        "parameter_schema": flow.parameter_schema(),
        "pull_steps": [{"set_working_directory": {"directory": str(project)}}],
        "job_variables": job_variables,
    }
    return str(client.upsert_deployment(body)["id"])


FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def timed_run(client: Any, dep_id: str, timeout: float) -> dict[str, Any]:
    """POST a run; seconds until the flow's first line ran (the time.time() it returns)."""
    t_post = time.time()
    run = client.create_run(dep_id, {})
    created = parse_ts(run["created"]).timestamp()
    deadline = time.monotonic() + timeout
    while (state := client.get_run(run["id"]))["state"] not in FINAL_STATES:
        if time.monotonic() > deadline:
            raise BenchError(f"run {run['id']} still {state['state']} after {timeout:.0f} s")
        time.sleep(0.02)
    if state["state"] != "COMPLETED":
        raise BenchError(
            f"run {run['id']} ended {state['state']}: {(state.get('state_message') or '')[-600:]}"
        )
    stamp = state.get("result")
    if not isinstance(stamp, dict) or "t" not in stamp:
        raise BenchError(f"run {run['id']} returned {stamp!r}, not the flow's time stamp")
    return {
        "run_id": run["id"],
        "post_to_flow_s": stamp["t"] - t_post,
        "created_to_flow_s": stamp["t"] - created,
        "prefix": stamp["prefix"],
    }


def stop_leftover_sandboxes(managed_root: Path) -> None:
    """Sandboxes outlive the server by design; ours must not outlive the benchmark."""
    runs_dir = managed_root / "runs"
    if not runs_dir.is_dir():
        return
    from push_pools.executors.managed.executor import ManagedExecutor

    executor = ManagedExecutor(managed_root)
    for run_dir in runs_dir.iterdir():
        if run_dir.is_dir() and not (run_dir / "result.json").exists():
            with contextlib.suppress(Exception):
                executor.cancel(run_dir.name, grace_seconds=2.0, wait=True)


def managed_cold_start(backend: Backend, home: Path, samples: int) -> dict[str, Any]:
    """Both isolation modes at once: two servers (one per PUSH_POOLS_MANAGED_ISOLATION value,
    each with its own store) on one PUSH_POOLS_HOME, their samples taken in turn, so that other
    work on the machine weighs on both alike and their difference is isolation's cost."""
    from push_pools.client import Client

    server_home = home / f"cold-{backend.label.lower()}"
    # Outside PUSH_POOLS_HOME (hidden from isolated runs) and readable by the uid a root
    # server's runs drop to.
    project = home / f"cold-{backend.label.lower()}-project"
    managed_root = server_home / "managed"
    home.chmod(0o755)
    project.mkdir(mode=0o755, parents=True, exist_ok=True)
    (project / "flows.py").write_text(FLOW_SOURCE)
    (project / "flows.py").chmod(0o644)
    out: dict[str, dict[str, Any]] = {
        key: {"backend": backend.label, "samples": samples, "isolation": mode}
        for mode, key in COLD_MODES.items()
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(push_pools_home(server_home))
        stack.callback(stop_leftover_sandboxes, managed_root)
        sides: dict[str, tuple[Any, str, str]] = {}
        for mode, key in COLD_MODES.items():
            url = stack.enter_context(backend.fresh_url(f"cold-{mode}"))
            with managed_isolation(mode):  # read when the server is made
                server = stack.enter_context(embedded_server(url))
            client = stack.enter_context(Client(server.api_url))
            pool = client.create_work_pool({"name": "managed", "type": "managed"})
            if pool.get("isolation") != mode:
                shown = pool.get("isolation")
                raise BenchError(f"a server started with {mode!r} reports {shown!r}")
            plain = deploy_stamp_flow(client, project, "plain", {})
            packages = deploy_stamp_flow(
                client, project, "packages", {"pip_packages": NEW_ENV_PACKAGES}
            )
            sides[key] = (client, plain, packages)

        def in_turn(label: str, deployment: int, timeout: float) -> None:
            for key, side in sides.items():
                out[key].setdefault(label, []).append(timed_run(side[0], side[deployment], timeout))

        log(f"  (a) no pip_packages: 1 first run + {samples}, isolated and unisolated in turn")
        in_turn("first_run", 1, COLD_RUN_TIMEOUT_S)
        for _ in range(samples):
            in_turn("server_env", 1, COLD_RUN_TIMEOUT_S)
        log(f"  (b) pip_packages {NEW_ENV_PACKAGES}: a new environment for each (envs/ cleared)")
        for key, (client, _, packages) in sides.items():
            shutil.rmtree(managed_root / "envs", ignore_errors=True)
            out[key]["new_env"] = timed_run(client, packages, COLD_NEW_ENV_TIMEOUT_S)
        log(f"  (b) same pip_packages again: cached environment x{samples}, in turn")
        for _ in range(samples):
            in_turn("cached_env", 2, COLD_RUN_TIMEOUT_S)
    envs = str((managed_root / "envs").resolve())
    for figures in out.values():
        figures["first_run"] = figures["first_run"][0]
        for item in [figures["new_env"], *figures["cached_env"]]:
            if not item["prefix"].startswith(envs):
                raise BenchError(
                    f"run {item['run_id']} with pip_packages ran in {item['prefix']}, not in an "
                    f"environment under {envs}"
                )
        for item in [figures["first_run"], *figures["server_env"]]:
            if item["prefix"].startswith(envs):
                raise BenchError(
                    f"run {item['run_id']} without pip_packages ran in {item['prefix']}"
                )
        for label in ("server_env", "cached_env"):
            figures[f"{label}_median_s"] = statistics.median(
                s["post_to_flow_s"] for s in figures[label]
            )
    # Isolation's cost: each isolated sample minus the unisolated one taken right after it.
    isolated, unisolated = (out[key] for key in COLD_MODES.values())
    for label in ("server_env", "cached_env"):
        isolated[f"{label}_paired_extra_median_s"] = statistics.median(
            a["post_to_flow_s"] - b["post_to_flow_s"]
            for a, b in zip(isolated[label], unisolated[label], strict=True)
        )
    return out


@contextlib.contextmanager
def managed_isolation(mode: str) -> Iterator[None]:
    """PUSH_POOLS_MANAGED_ISOLATION while a server is made (it is read then, once)."""
    old = os.environ.get("PUSH_POOLS_MANAGED_ISOLATION")
    os.environ["PUSH_POOLS_MANAGED_ISOLATION"] = mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PUSH_POOLS_MANAGED_ISOLATION", None)
        else:
            os.environ["PUSH_POOLS_MANAGED_ISOLATION"] = old


# --------------------------------------------------------------------------- report


def fmt_s(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "n/a"
    return f"{value * 1000:.1f} ms" if unit == "ms" else f"{value:.2f} s"


def verdict(value: float | None, aim: float, higher_is_better: bool) -> str:
    if value is None:
        return ""
    ok = value >= aim if higher_is_better else value <= aim
    return "" if ok else " (below aim)"


def table_rows(results: dict[str, dict[str, Any]], labels: list[str], args: Any) -> list[list[str]]:
    """One row per figure of the sections that ran; "n/a" where a section failed."""

    def tput(key: str) -> Callable[[dict[str, Any], str], str]:
        def get(s: dict[str, Any], label: str) -> str:
            r = s[key]
            # The aim is stated for SQLite only.
            judged = key == "throughput" and label == "SQLite"
            aim = verdict(r["runs_per_s"], THROUGHPUT_AIM, True) if judged else ""
            return f"{r['runs_per_s']:.0f} runs/s ({r['seconds']:.2f} s){aim}"

        return get

    def seconds(path: tuple[str, ...], aim: float | None = None, unit: str = "s") -> Any:
        def get(s: dict[str, Any], _label: str) -> str:
            value = s
            for key in path:
                value = value[key]
            return fmt_s(value, unit) + (verdict(value, aim, False) if aim is not None else "")

        return get

    packages = " ".join(NEW_ENV_PACKAGES)
    n = args.cold_samples
    specs: list[tuple[str, str, Callable[[dict[str, Any], str], str], str]] = [
        (
            "throughput",
            f"dispatch throughput, {args.runs} runs, batch_size {args.runs} "
            f"(median of {args.repeat})",
            tput("throughput"),
            f"> {THROUGHPUT_AIM:.0f} runs/s (SQLite)",
        ),
        (
            "throughput",
            f"dispatch throughput, {args.runs} runs, batch_size 200 (default; "
            f"median of {args.repeat})",
            tput("throughput_default_batch"),
            "",
        ),
        (
            "latency",
            f"dispatch latency, created -> submit, {args.latency_runs} runs (median)",
            seconds(("latency", "median_s"), LATENCY_AIM_S, "ms"),
            f"< {LATENCY_AIM_S * 1000:.0f} ms",
        ),
        (
            "latency",
            "dispatch latency, created -> submit (p99 / max)",
            lambda s, label: (
                f"{seconds(('latency', 'p99_s'), unit='ms')(s, label)} / "
                f"{seconds(('latency', 'max_s'), unit='ms')(s, label)}"
            ),
            "",
        ),
    ]
    for mode, key in COLD_MODES.items():
        how = "isolated (bwrap)" if mode == "bwrap" else "unisolated"
        aim = COLD_ISOLATED_AIM_S if mode == "bwrap" else COLD_AIM_S
        specs += [
            (
                "cold-start",
                f"managed cold start, {how}, no pip_packages, first run after server start",
                seconds((key, "first_run", "post_to_flow_s")),
                "",
            ),
            (
                "cold-start",
                f"managed cold start, {how}, no pip_packages (median of {n})",
                seconds((key, "server_env_median_s"), aim),
                f"< {aim} s",
            ),
            (
                "cold-start",
                f"managed cold start, {how}, new env {packages} (1 run)",
                seconds((key, "new_env", "post_to_flow_s")),
                "",
            ),
            (
                "cold-start",
                f"managed cold start, {how}, cached env {packages} (median of {n})",
                seconds((key, "cached_env_median_s"), aim),
                f"< {aim} s",
            ),
        ]
        if mode == "bwrap":
            specs.append(
                (
                    "cold-start",
                    f"isolation's cost, cached env (median of {n} paired differences)",
                    seconds((key, "cached_env_paired_extra_median_s")),
                    "",
                )
            )
    rows = []
    for section, metric, get, aim in specs:
        if section not in args.only:
            continue
        cells = []
        for label in labels:
            try:
                cells.append(get(results.get(label) or {}, label))
            except (KeyError, TypeError, ValueError):
                cells.append("n/a")
        rows.append([metric, *cells, aim])
    return rows


def run_backend(backend: Backend, home: Path, args: Any, fails: list[str]) -> dict[str, Any]:
    """Every selected section on one backend; a failed section is recorded and the rest go on."""
    figures: dict[str, Any] = {"errors": []}
    steps: list[tuple[str, str, Callable[[], Any]]] = []
    if "throughput" in args.only:
        steps.append(
            (
                "throughput",
                f"throughput: {args.runs} runs, batch_size {args.runs}, {args.repeat} pass(es)",
                lambda: throughput_median(backend, args.runs, args.runs, args.repeat),
            )
        )
        steps.append(
            (
                "throughput_default_batch",
                f"throughput: {args.runs} runs, batch_size 200, {args.repeat} pass(es)",
                lambda: throughput_median(backend, args.runs, 200, args.repeat),
            )
        )
    if "latency" in args.only:
        steps.append(
            (
                "latency",
                f"latency: {args.latency_runs} runs through the API",
                lambda: dispatch_latency(backend, home, args.latency_runs),
            )
        )
    if "cold-start" in args.only:
        steps.append(
            (
                "cold-start",
                "managed cold start, isolated (bwrap) and unisolated (none) in turn",
                lambda: managed_cold_start(backend, home, args.cold_samples),
            )
        )
    for key, what, step in steps:
        log(f"[{backend.label}] {what}")
        try:
            if key == "cold-start":
                figures.update(step())  # one entry per isolation mode
            else:
                figures[key] = step()
        except BenchError as exc:
            figures["errors"].append(str(exc))
            fails.append(f"FAIL [{backend.label}] {what}: {exc}")
        except Exception as exc:  # noqa: BLE001 - report it and go on with the next section
            figures["errors"].append(f"{type(exc).__name__}: {exc}")
            fails.append(
                f"FAIL [{backend.label}] {what}: {type(exc).__name__}: {exc}\n"
                f"{traceback.format_exc()}"
            )
    tput = figures.get("throughput")
    below = tput is not None and tput["runs_per_s"] < THROUGHPUT_AIM
    if "throughput" in args.only and (args.profile or (below and backend.label == "SQLite")):
        log(f"[{backend.label}] profiling a second throughput pass (cProfile, main thread)")
        try:
            profiled = dispatch_throughput(backend, args.runs, args.runs, profile=True)
            figures["profile"] = profiled.pop("profile")
            figures["profile"]["profiled_seconds"] = profiled["seconds"]
            print_profile(f"{backend.label}, {args.runs} runs", figures["profile"])
        except Exception as exc:  # noqa: BLE001
            fails.append(f"FAIL [{backend.label}] profiled pass: {type(exc).__name__}: {exc}")
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5000, help="runs for throughput (default 5000)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="throughput passes per figure, each on a fresh store; the median is shown (default 3)",
    )
    ap.add_argument(
        "--latency-runs", type=int, default=200, help="runs created for latency (default 200)"
    )
    ap.add_argument(
        "--cold-samples", type=int, default=5, help="samples per cold-start figure (default 5)"
    )
    pg = ap.add_mutually_exclusive_group()
    pg.add_argument(
        "--postgres-url",
        help="also run on this PostgreSQL server (a database is created per section, then dropped)",
    )
    pg.add_argument(
        "--with-postgres",
        action="store_true",
        help="also run on a throwaway PostgreSQL from scripts/postgres.sh, stopped at the end",
    )
    ap.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable; default: all)",
    )
    ap.add_argument(
        "--profile", action="store_true", help="profile a throughput pass on every backend"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (stores, sandboxes)")
    args = ap.parse_args()
    args.only = args.only or list(SECTIONS)
    if min(args.runs, args.repeat, args.latency_runs, args.cold_samples) < 1:
        ap.error("--runs, --repeat, --latency-runs and --cold-samples must be positive")

    isolate_environment()
    load_at_start = os.getloadavg()
    fails: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    with signals_as_interrupt(), temp_home("push-pools-bench-dispatch-", args.keep) as home:
        backends = [Backend("SQLite", home)]
        with contextlib.ExitStack() as stack:
            pg_url = args.postgres_url
            if args.with_postgres:
                log("starting a throwaway PostgreSQL (scripts/postgres.sh)")
                try:
                    pg_url = stack.enter_context(throwaway_postgres())
                except BenchError as exc:
                    fails.append(f"FAIL: {exc}")
            if pg_url:
                backends.append(Backend("PostgreSQL", home, normalize_postgres_url(pg_url)))
            for backend in backends:
                results[backend.label] = run_backend(backend, home, args, fails)
            log("tearing down")

    labels = [b.label for b in backends]
    print()
    table = print_table(["metric", *labels, "aim"], table_rows(results, labels, args))
    for line in fails:
        print(line)
    try:
        from importlib.metadata import version

        pp_version = version("push-pools")
    except Exception:  # noqa: BLE001
        pp_version = "unknown"
    payload = {
        "benchmark": "bench_dispatch",
        "date": time.strftime("%Y-%m-%d"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        # Other work on the machine shows here (1, 5, 15 minute load averages).
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "version": pp_version,
        "args": {k: v for k, v in vars(args).items()},
        "aims": {
            "throughput_runs_per_s": THROUGHPUT_AIM,
            "latency_median_s": LATENCY_AIM_S,
            "cold_start_cached_s": COLD_AIM_S,
            "cold_start_cached_isolated_s": COLD_ISOLATED_AIM_S,
        },
        "results": results,
        "fails": fails,
        "wall_s": time.monotonic() - started,
        "table": table,
    }
    path = write_json("bench-dispatch", payload)
    print(f"\nwrote {path} ({payload['wall_s']:.0f} s)")
    return 1 if fails else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was torn down", file=sys.stderr)
        sys.exit(130)
