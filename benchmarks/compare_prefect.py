"""push-pools vs Prefect 3, same machine, same run, default settings on both sides.

    /work/main/.venv/bin/python benchmarks/compare_prefect.py [--runs 20] [--skip-prefect]

Prefect is installed into its own venv (default ~/.cache/push-pools-bench/prefect-venv), never
into the project's. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    BenchError,
    ProcessGroupSet,
    PushPools,
    RetryingClient,
    Stack,
    StackFigures,
    clean_env,
    cold_times,
    expect_json,
    fmt,
    free_port,
    log,
    machine_info,
    print_table,
    run_cli,
    run_cli_burst,
    run_workload,
    signals_as_interrupt,
    state_name,
    temp_home,
    write_json,
)

DEFAULT_VENV = Path.home() / ".cache" / "push-pools-bench" / "prefect-venv"
MARKER = "push-pools-bench.json"  # records how the venv's Prefect was installed
PIP_TIMEOUT = 1200.0
WORKER_LIMIT = 4
WORKER_SETTLE_S = 3.0

# --------------------------------------------------------------------------- Prefect install


@dataclass
class PrefectInstall:
    venv: Path
    version: str
    method: str  # "pip", or "relaxed: ..." when a pin no served release satisfies was dropped
    pip_check: str


def _pip(venv: Path, args: list[str], logfile: Path) -> tuple[int, str]:
    env = clean_env({"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}, venv / "bin")
    try:
        res = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return 124, f"pip {' '.join(args)} timed out after {PIP_TIMEOUT:.0f} s"
    out = res.stdout + res.stderr
    with open(logfile, "a") as fh:
        fh.write(f"\n$ pip {' '.join(args)}\n{out}\n")
    return res.returncode, out


def _unsatisfiable(pip_output: str) -> list[str]:
    """Names of requirements no served release satisfies (a pin newer than the index)."""
    return sorted(
        set(re.findall(r"No matching distribution found for ([A-Za-z0-9][\w.-]*)", pip_output))
    )


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheel_requirements(venv: Path, version: str, logfile: Path) -> list[str]:
    """Requires-Dist of the prefect wheel, without extras, read from the wheel itself."""
    with tempfile.TemporaryDirectory(prefix="prefect-wheel-") as d:
        rc, out = _pip(
            venv,
            ["download", "--no-deps", "--only-binary=:all:", "-d", d, f"prefect=={version}"],
            logfile,
        )
        wheels = list(Path(d).glob("*.whl"))
        if rc != 0 or not wheels:
            raise BenchError(f"could not download the prefect {version} wheel:\n{out[-1500:]}")
        with zipfile.ZipFile(wheels[0]) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            text = zf.read(meta).decode()
    reqs = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist:"):
            req = line.split(":", 1)[1].strip()
            marker = req.split(";", 1)[1] if ";" in req else ""
            if "extra" not in marker:
                reqs.append(req)
    return reqs


def _relax(req: str, names: set[str]) -> str:
    m = re.match(r"\s*([A-Za-z0-9][\w.-]*)(\[[^\]]*\])?([^;]*)(;.*)?$", req)
    if not m or _norm(m.group(1)) not in names:
        return req
    return f"{m.group(1)}{m.group(2) or ''}{m.group(4) or ''}"


def _install_relaxed(venv: Path, version: str, too_new: list[str], logfile: Path) -> str | None:
    """The reference workaround: the wheel's deps with the offending pins dropped, then the
    wheel itself with --no-deps. Returns a description, or None if that did not work either."""
    names = {_norm(n) for n in too_new}
    reqs = _wheel_requirements(venv, version, logfile)
    for _ in range(3):  # each pass may uncover one more pin the index cannot meet
        req_file = venv / "prefect-requirements.txt"
        req_file.write_text("\n".join(_relax(r, names) for r in reqs) + "\n")
        rc, out = _pip(venv, ["install", "-r", str(req_file)], logfile)
        if rc == 0:
            break
        more = {_norm(n) for n in _unsatisfiable(out)} - names
        if not more:
            log(f"  dependencies of prefect {version} do not install:\n{out[-1500:]}")
            return None
        names |= more
    else:
        return None
    rc, out = _pip(venv, ["install", "--no-deps", f"prefect=={version}"], logfile)
    if rc != 0:
        log(f"  prefect {version} --no-deps failed:\n{out[-1500:]}")
        return None
    return f"relaxed: pins dropped for {', '.join(sorted(names))}; prefect installed --no-deps"


def _installed_version(venv: Path) -> str | None:
    py = venv / "bin" / "python"
    if not (py.exists() and (venv / "bin" / "prefect").exists()):
        return None
    try:
        res = subprocess.run(
            [str(py), "-c", "import prefect; print(prefect.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env({}, venv / "bin"),
        )
    except subprocess.TimeoutExpired:
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def _candidate_versions(venv: Path, logfile: Path) -> list[str]:
    rc, out = _pip(venv, ["index", "versions", "prefect"], logfile)
    m = re.search(r"Available versions:\s*(.+)", out)
    if rc != 0 or not m:
        raise BenchError(f"cannot list prefect versions:\n{out[-1500:]}")
    versions = [v.strip() for v in m.group(1).split(",")]
    # pip lists newest first; pre-releases are already excluded by pip.
    return [v for v in versions if v.startswith("3.")][:6]


def ensure_prefect(venv: Path, pinned: str | None, strict: bool, reinstall: bool) -> PrefectInstall:
    venv = venv.expanduser()
    marker = venv / MARKER
    have = None if reinstall else _installed_version(venv)
    if have and (pinned is None or have == pinned):
        info = json.loads(marker.read_text()) if marker.exists() else {}
        log(f"reusing Prefect {have} in {venv}")
        return PrefectInstall(
            venv, have, info.get("method", "pre-existing"), info.get("pip_check", "")
        )
    if venv.exists():
        if not (venv / "pyvenv.cfg").exists():
            raise BenchError(f"{venv} exists and is not a virtual env; refusing to replace it")
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    log(f"creating {venv} (pip log: {venv.parent / 'prefect-install.log'})")
    # The running interpreter may be the project's venv python; venv then uses its base python.
    run_cli(
        [sys.executable, "-m", "venv", str(venv)],
        clean_env({}, Path(sys.executable).parent),
        venv.parent,
        timeout=300,
    )
    logfile = venv.parent / "prefect-install.log"
    logfile.write_text("")
    candidates = [pinned] if pinned else _candidate_versions(venv, logfile)
    for version in candidates:
        log(f"installing prefect=={version} ...")
        rc, out = _pip(venv, ["install", f"prefect=={version}"], logfile)
        method: str | None = "pip" if rc == 0 else None
        too_new = _unsatisfiable(out) if rc != 0 else []
        if rc != 0:
            log(
                f"  prefect {version} does not resolve here"
                + (
                    f" (needs a newer {', '.join(too_new)} than the index serves)"
                    if too_new
                    else ""
                )
            )
        if method is None and too_new and not strict:
            log("  retrying with those pins dropped (see README: Prefect install)")
            method = _install_relaxed(venv, version, too_new, logfile)
        if method is None:
            continue
        have = _installed_version(venv)
        if have != version:
            log(f"  prefect {version} installed but does not import; trying an older one")
            continue
        _, check = _pip(venv, ["check"], logfile)
        marker.write_text(
            json.dumps({"version": version, "method": method, "pip_check": check.strip()}, indent=2)
        )
        return PrefectInstall(venv, version, method, check.strip())
    raise BenchError(f"no Prefect 3 release installed out of {candidates}; see {logfile}")


# --------------------------------------------------------------------------- Prefect driver


FLOW_SOURCE_PREFECT = """\
from prefect import flow


@flow
def trivial():
    return 1
"""

DEPLOY_SCRIPT = """\
import sys
from prefect import flow

dep_id = flow.from_source(source=sys.argv[1], entrypoint="flow.py:trivial").deploy(
    name=sys.argv[2], work_pool_name=sys.argv[3], print_next_steps=False
)
print(dep_id)
"""


class Prefect:
    """Prefect driven the way its deployment tutorial does it: CLI, Python deploy, REST."""

    label = "Prefect"
    flow_name = "trivial"
    deployment_name = "bench"
    pool = "bench-pool"

    def __init__(self, home: Path, port: int, venv: Path) -> None:
        self.home = home
        self.port = port
        self.venv = venv
        self.cli = str(venv / "bin" / "prefect")
        self.api = f"http://127.0.0.1:{port}/api"
        # Defaults everywhere except isolation and analytics (there is no DNS here anyway);
        # PREFECT_WORKER_QUERY_SECONDS is deliberately left at Prefect's default.
        self.env = clean_env(
            {
                "PREFECT_HOME": str(home),
                "PREFECT_API_URL": self.api,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
                "DO_NOT_TRACK": "1",
            },
            venv / "bin",
        )

    def help_argv(self) -> list[str]:
        return [self.cli, "--help"]

    def server_argv(self) -> list[str]:
        return [self.cli, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]

    @property
    def health_url(self) -> str:
        return f"{self.api}/health"

    def create_pool(self) -> None:
        run_cli(
            [self.cli, "work-pool", "create", self.pool, "--type", "process"], self.env, self.home
        )

    def worker_argv(self, limit: int) -> list[str]:
        return [self.cli, "worker", "start", "--pool", self.pool, "--limit", str(limit)]

    def deploy(self, client: RetryingClient) -> str:
        flow_dir = self.home / "flows"
        flow_dir.mkdir(exist_ok=True)
        (flow_dir / "flow.py").write_text(FLOW_SOURCE_PREFECT)
        (self.home / "deploy.py").write_text(DEPLOY_SCRIPT)
        run_cli(
            [
                str(self.venv / "bin" / "python"),
                str(self.home / "deploy.py"),
                str(flow_dir),
                self.deployment_name,
                self.pool,
            ],
            self.env,
            flow_dir,
            timeout=300,
        )
        url = f"{self.api}/deployments/name/{self.flow_name}/{self.deployment_name}"
        return str(expect_json(client.get(url), "id", url)["id"])

    def create_run(self, client: RetryingClient, dep_id: str, body: dict[str, Any]) -> str:
        url = f"{self.api}/deployments/{dep_id}/create_flow_run"
        return str(expect_json(client.post(url, json=body), "id", url)["id"])

    def run_argv(self) -> list[str]:
        return [self.cli, "deployment", "run", f"{self.flow_name}/{self.deployment_name}"]

    def run_id_from_output(self, stdout: str) -> str | None:
        # Prefect prints the new run's details, among them "UUID: <id>".
        found = re.search(r"UUID:\s*([0-9a-f-]{36})", stdout)
        return found.group(1) if found else None

    def state_of(self, client: RetryingClient, run_id: str) -> str:
        url = f"{self.api}/flow_runs/{run_id}"
        body = expect_json(client.get(url), "state", url)
        return state_name(body["state"] or {"type": body.get("state_type", "")})


# --------------------------------------------------------------------------- measurement


def measure(system: Any, runs: int, workload_timeout: float, health_timeout: float) -> StackFigures:
    """All figures for one orchestrator; failures become notes so the other side still runs."""
    figures = StackFigures()
    procs = ProcessGroupSet()
    stack = Stack(system, procs)
    raw = httpx.Client(timeout=30.0)
    client = RetryingClient(raw)
    try:
        log(f"{system.label}: --help x5")
        figures.help_samples = cold_times(system.help_argv(), system.env, system.home)
        log(f"{system.label}: server start")
        stack.start_server(figures, health_timeout)
        log(
            f"{system.label}: healthy after {figures.server_start_s:.2f} s, "
            f"RSS {figures.idle_rss_mib:.1f} MiB; pool, worker, deployment"
        )
        system.create_pool()
        stack.start_worker(WORKER_LIMIT)
        t_worker = time.monotonic()
        dep_id = system.deploy(client)
        stack.wait_worker_up(WORKER_SETTLE_S - (time.monotonic() - t_worker))
        log(f"{system.label}: {runs} runs (timeout {workload_timeout:.0f} s)")
        figures.workload = run_workload(system, stack, client, dep_id, runs, workload_timeout)
        log(f"{system.label}: workload {figures.workload.summary()}")
        if figures.workload.error:
            figures.errors.append(f"workload: {figures.workload.error}")
        log(f"{system.label}: {runs} concurrent `deployment run` processes")
        burst = run_cli_burst(system, client, runs, workload_timeout, stack.dead)
        figures.extra["cli_burst"] = asdict(burst)
        figures.extra["cli_burst_s"] = burst.seconds
        log(f"{system.label}: CLI burst {burst.summary()}")
        if burst.error:
            figures.errors.append(f"CLI burst: {burst.error}")
        for key, argv in cold_commands(system):
            log(f"{system.label}: {key} x5")
            samples = cold_times(argv, system.env, system.home)
            figures.extra[key] = sorted(samples)[len(samples) // 2]
    except BenchError as exc:
        figures.errors.append(str(exc))
        log(f"{system.label}: FAILED: {exc}")
    except (httpx.HTTPError, OSError, ValueError) as exc:
        figures.errors.append(f"{type(exc).__name__}: {exc}")
        log(f"{system.label}: FAILED:\n{traceback.format_exc()}")
    finally:
        log(f"{system.label}: tearing down")
        raw.close()
        procs.stop_all()
        figures.extra["http_retries"] = client.retries
        # Errors a server swallows (e.g. SQLite "database is locked") still say something.
        figures.extra["log_tracebacks"] = stack.log_tracebacks()
    return figures


# Commands that talk to the server, each a fresh process against the loaded server (the runs of
# the workload and the burst are there): (figure key, argv words after the CLI).
COLD_COMMANDS = (
    ("work_pool_ls_s", ["work-pool", "ls"]),
    ("flow_run_ls_s", ["flow-run", "ls"]),
)


def cold_commands(system: Any) -> list[tuple[str, list[str]]]:
    commands = [(key, [system.cli, *words]) for key, words in COLD_COMMANDS]
    # Each side's own `deployment run` (it creates a run; the worker completes it).
    return [*commands, ("deployment_run_s", system.run_argv())]


def ratio(ours: float | None, theirs: float | None, better: str, worse: str) -> str:
    if not ours or theirs is None:
        return "n/a"
    r = theirs / ours
    return f"{r:.1f}x {better}" if r >= 1 else f"{1 / r:.1f}x {worse}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="flow runs in the burst (default 20)")
    ap.add_argument("--skip-prefect", action="store_true", help="measure push-pools only")
    ap.add_argument("--prefect-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--prefect-version", help="install exactly this version (default: newest)")
    ap.add_argument(
        "--prefect-strict",
        action="store_true",
        help="never drop an unsatisfiable pin; fall back to an older release instead",
    )
    ap.add_argument("--reinstall", action="store_true", help="recreate the Prefect venv")
    ap.add_argument(
        "--bin-dir",
        type=Path,
        default=None,
        help="venv bin/ with push-pools (default: this python's, else the project's)",
    )
    ap.add_argument("--keep", action="store_true", help="keep temp homes (logs) for debugging")
    ap.add_argument(
        "--this-checkout",
        action="store_true",
        help="run push-pools from this checkout (PYTHONPATH), not the venv's installed copy",
    )
    args = ap.parse_args()

    with signals_as_interrupt():
        install: PrefectInstall | None = None
        if not args.skip_prefect:
            install = ensure_prefect(
                args.prefect_venv, args.prefect_version, args.prefect_strict, args.reinstall
            )
            log(f"measuring Prefect {install.version} ({install.method})")

        # One side at a time, each torn down before the next starts: they share 2 cores.
        with temp_home("push-pools-bench-", args.keep) as home:
            ours_sys = PushPools(home, free_port(), args.bin_dir or PushPools.default_bin_dir())
            if args.this_checkout:
                ours_sys.env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
            ours_version = ours_sys.version()
            ours = measure(ours_sys, args.runs, 60.0, 60.0)
        theirs: StackFigures | None = None
        if install is not None:
            with temp_home("prefect-bench-", args.keep) as home:
                theirs = measure(Prefect(home, free_port(), install.venv), args.runs, 300.0, 180.0)

    wl = f"{args.runs} runs, limit {WORKER_LIMIT}"
    metrics = [
        (
            "help_cold_s",
            "--help, cold process (median of 5)",
            "s",
            ours.help_median,
            theirs.help_median if theirs else None,
            "faster",
            "slower",
        ),
        *(
            (
                key,
                f"`{label}`, cold process (median of 5)",
                "s",
                ours.extra.get(key),
                theirs.extra.get(key) if theirs else None,
                "faster",
                "slower",
            )
            for key, label in (
                ("work_pool_ls_s", "work-pool ls"),
                ("flow_run_ls_s", "flow-run ls"),
                ("deployment_run_s", "deployment run"),
            )
        ),
        (
            "server_start_s",
            "server start to healthy",
            "s",
            ours.server_start_s,
            theirs.server_start_s if theirs else None,
            "faster",
            "slower",
        ),
        (
            "idle_rss_mib",
            "idle server RSS (tree)",
            "MiB",
            ours.idle_rss_mib,
            theirs.idle_rss_mib if theirs else None,
            "smaller",
            "larger",
        ),
        (
            "workload_s",
            f"{wl}: create -> all COMPLETED",
            "s",
            ours.workload.seconds if ours.workload else None,
            theirs.workload.seconds if theirs and theirs.workload else None,
            "faster",
            "slower",
        ),
        (
            "cli_burst_s",
            f"{args.runs} concurrent `deployment run` processes -> all COMPLETED",
            "s",
            ours.extra.get("cli_burst_s"),
            theirs.extra.get("cli_burst_s") if theirs else None,
            "faster",
            "slower",
        ),
    ]

    def cell(f: StackFigures | None, key: str, value: float | None, unit: str) -> str:
        if f is None:
            return "skipped"
        if key == "workload_s" and f.workload is not None and value is None:
            return f.workload.short()
        return fmt(value, unit)

    header = ["metric", f"push-pools {ours_version}"]
    if theirs is not None and install is not None:
        header += [f"Prefect {install.version}", "ratio (Prefect/push-pools)"]
    rows = []
    for key, label, unit, o, t, better, worse in metrics:
        row = [label, cell(ours, key, o, unit)]
        if theirs is not None:
            row += [cell(theirs, key, t, unit), ratio(o, t, better, worse)]
        rows.append(row)
    print()
    table = print_table(header, rows)

    errors = {"push-pools": ours.errors, "prefect": theirs.errors if theirs else []}
    for side, errs in errors.items():
        for e in errs:
            print(f"\n{side} error: {e}")
    payload = {
        "benchmark": "compare_prefect",
        "date": time.strftime("%Y-%m-%d"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "runs": args.runs,
        "worker_limit": WORKER_LIMIT,
        "push_pools": {"version": ours_version, **ours.to_json()},
        "prefect": (
            {
                "version": install.version,
                "install_method": install.method,
                "pip_check": install.pip_check,
                "venv": str(install.venv),
                "worker_query_seconds": "default",
                **theirs.to_json(),
            }
            if theirs is not None and install is not None
            else None
        ),
        "metrics": {
            key: {
                "label": label,
                "unit": unit,
                "push_pools": o,
                "prefect": t,
                "ratio_prefect_over_push_pools": (t / o) if o and t is not None else None,
            }
            for key, label, unit, o, t, _, _ in metrics
        },
        "table": table,
    }
    path = write_json("compare-prefect", payload)
    print(f"\nwrote {path}")
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; everything started was torn down", file=sys.stderr)
        sys.exit(130)
