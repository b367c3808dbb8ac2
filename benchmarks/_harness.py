"""Shared plumbing for the benchmark scripts: processes, timing, RSS, workloads, reports.

Stdlib + httpx only, so the benchmarks run in the project's venv without extra installs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

# Any of these counts as "the run is over"; only COMPLETED counts as success.
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED", "CANCELED"})

FORBIDDEN_IMPORT_PREFIXES = ("boto3", "botocore", "google.cloud", "azure")


class BenchError(RuntimeError):
    """A benchmark step failed; the message is meant to be shown as is."""


def log(msg: str) -> None:
    # stderr so that the result table on stdout stays clean to copy/paste.
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_table() -> dict[int, int]:
    """pid -> ppid for every live process (zombies excluded: they hold no memory)."""
    table: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # comm may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        table[int(entry.name)] = int(fields[1])
    return table


def descendants(pid: int) -> list[int]:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for child, parent in table.items():
        children.setdefault(parent, []).append(child)
    out: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def rss_mib(pid: int) -> float:
    """VmRSS of pid plus all its descendants (servers fork workers/reloaders)."""
    total_kib = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
                    break
        except OSError:
            continue  # exited between listing and reading
    return total_kib / 1024


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2] != "Z"


@dataclass
class Managed:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class ProcessGroupSet:
    """Background processes, each in its own session so a whole tree can be killed at once."""

    def __init__(self) -> None:
        self._items: list[Managed] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log_dir: Path
    ) -> Managed:
        log_path = log_dir / f"{name}.log"
        with open(log_path, "wb") as fh:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        item = Managed(name, proc, log_path)
        self._items.append(item)
        return item

    def stop_all(self, grace: float = 10.0) -> None:
        # A second Ctrl-C must not abandon half-killed trees; teardown is bounded anyway.
        sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        old = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
        try:
            # Reverse start order: workers go before the server they talk to.
            while self._items:
                self._stop(self._items.pop(), grace)
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    @staticmethod
    def _stop(item: Managed, grace: float) -> None:
        pid = item.proc.pid
        # Collect the tree first: children that setsid() would escape a killpg.
        tree = [pid, *descendants(pid)] if item.proc.poll() is None else descendants(pid)
        for sig, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            for p in tree:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, sig)
            if _wait_gone(item.proc, tree, wait_s):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            item.proc.wait(timeout=5)


def _wait_gone(proc: subprocess.Popen[bytes], pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc.poll()  # reap our direct child so it does not linger as a zombie
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Make SIGINT/SIGTERM/SIGHUP raise KeyboardInterrupt so `finally` teardown always runs."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    # A shell starts background jobs with SIGINT ignored; Ctrl-C must still tear down.
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def clean_env(extra: dict[str, str], bin_dir: Path) -> dict[str, str]:
    """The caller's env minus anything that could point a tool at another install or server."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "PUSH_POOLS_"))
        and k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"}
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


def run_cli(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"`{' '.join(argv)}` did not finish in {timeout:.0f} s") from exc
    except FileNotFoundError as exc:
        raise BenchError(f"`{argv[0]}` not found") from exc
    if res.returncode != 0:
        out = (res.stdout + res.stderr).strip().splitlines()[-25:]
        raise BenchError(f"`{' '.join(argv)}` exited {res.returncode}:\n    " + "\n    ".join(out))
    return res


def cold_times(argv: list[str], env: dict[str, str], cwd: Path, n: int = 5) -> list[float]:
    """Wall time of n fresh processes; each must succeed or the figure would be meaningless."""
    samples: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        run_cli(argv, env, cwd, timeout=120)
        samples.append(time.perf_counter() - t0)
    return samples


def imported_modules(argv: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """Every module imported by a process, from `python -X importtime` (covers lazy imports)."""
    res = run_cli([argv[0], "-X", "importtime", *argv[1:]], env, cwd, timeout=120)
    mods: list[str] = []
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                mods.append(name)
    return mods


def forbidden_imports(mods: list[str]) -> list[str]:
    prefixes = FORBIDDEN_IMPORT_PREFIXES
    return sorted(m for m in set(mods) if any(m == p or m.startswith(p + ".") for p in prefixes))


def wait_healthy(url: str, server: Managed, t0: float, timeout: float) -> float:
    """Seconds from t0 (just before spawning) until `url` answers 200."""
    deadline = t0 + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise BenchError(
                    f"server exited with {server.proc.returncode} before healthy:\n{server.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return time.monotonic() - t0
            time.sleep(0.05)
    raise BenchError(f"{url} not healthy within {timeout:.0f} s:\n{server.tail()}")


# --------------------------------------------------------------------------- http


class RetryingClient:
    """httpx.Client that retries 429/5xx-unavailable and connection errors with backoff.

    Prefect's SQLite server answers 503 when its database is locked under load, and its own
    client retries those; doing the same for both sides keeps the comparison about throughput
    rather than about who gives up first. Retries are counted and reported.
    """

    RETRY_STATUS = frozenset({429, 502, 503, 504})

    def __init__(self, client: RetryingClient, attempts: int = 8) -> None:
        self.client = client
        self.attempts = attempts
        self.retries = 0

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            try:
                resp = self.client.request(method, url, **kwargs)
            except httpx.TransportError:
                if last:
                    raise
            else:
                if resp.status_code not in self.RETRY_STATUS or last:
                    return resp
            self.retries += 1
            time.sleep(min(2.0, 0.25 * 2**attempt))
        raise AssertionError("unreachable")

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


# --------------------------------------------------------------------------- workloads


@dataclass
class WorkloadResult:
    runs: int
    timeout_s: float
    seconds: float | None = None  # None unless every run COMPLETED in time
    create_seconds: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def completed(self) -> int:
        return self.states.get("COMPLETED", 0)

    def short(self) -> str:
        if self.seconds is not None:
            return f"{self.seconds:.2f} s"
        if self.error:
            return "error"
        return f"timeout ({self.completed}/{self.runs} in {self.timeout_s:.0f} s)"

    def summary(self) -> str:
        if self.seconds is not None:
            return f"{self.seconds:.2f} s"
        if self.error:
            return f"error: {self.error}"
        return f"timeout ({self.completed}/{self.runs} COMPLETED in {self.timeout_s:.0f} s)"


def wait_all(
    ids: list[str],
    state_of: Callable[[str], str],
    deadline: float,
    alive: Callable[[], str | None],
    poll: float = 0.25,
) -> tuple[dict[str, str], list[str], str | None]:
    """Poll until every run is terminal, the deadline passes or a process dies.

    Walks the runs in creation order and stops at the first unfinished one, so a slow server is
    not also hammered by a GET per run every tick. Returns (final states, pending, error).
    """
    final: dict[str, str] = {}
    pending = list(ids)
    error: str | None = None
    while pending and time.monotonic() < deadline:
        for rid in list(pending):
            state = state_of(rid)
            if state not in TERMINAL_STATES:
                break
            final[rid] = state
            pending.remove(rid)
        if not pending:
            break
        if (error := alive()) is not None:
            break
        time.sleep(poll)
    return final, pending, error


def run_burst(
    create: Callable[[], str],
    state_of: Callable[[str], str],
    n: int,
    timeout: float,
    alive: Callable[[], str | None],
) -> WorkloadResult:
    """Create n runs back to back; seconds from the first create until all are COMPLETED."""
    result = WorkloadResult(runs=n, timeout_s=timeout)
    t0 = time.monotonic()
    ids = [create() for _ in range(n)]
    result.create_seconds = time.monotonic() - t0
    final, pending, result.error = wait_all(ids, state_of, t0 + timeout, alive)
    elapsed = time.monotonic() - t0
    for rid in pending:  # one full sweep so a timeout still reports where runs got stuck
        with contextlib.suppress(httpx.HTTPError, BenchError):
            final[rid] = state_of(rid)
    for state in final.values():
        result.states[state] = result.states.get(state, 0) + 1
    if not pending and result.completed == n:
        result.seconds = elapsed
    elif not pending and result.error is None:
        result.error = f"not all COMPLETED: {result.states}"
    return result


# Every CLI process of a burst must have exited by then.
CLI_TIMEOUT_S = 120.0


def run_cli_burst(
    system: Any, client: RetryingClient, n: int, timeout: float, alive: Callable[[], str | None]
) -> WorkloadResult:
    """Start n `deployment run` processes at once (the system's own CLI); seconds from their
    start until every run they created is COMPLETED. `create_seconds`: until the last process
    exited. A process that fails or prints no run id is an error, not a number."""
    result = WorkloadResult(runs=n, timeout_s=timeout)
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            system.run_argv(),
            env=system.env,
            cwd=system.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(n)
    ]
    ids: list[str] = []
    try:
        for proc in procs:
            remaining = max(t0 + CLI_TIMEOUT_S - time.monotonic(), 0.1)
            out, err = proc.communicate(timeout=remaining)
            run_id = system.run_id_from_output(out) if proc.returncode == 0 else None
            if run_id is None:
                result.error = f"`{' '.join(system.run_argv()[1:])}` failed: {(out + err)[-500:]}"
                return result
            ids.append(run_id)
    except subprocess.TimeoutExpired:
        result.error = f"`deployment run` processes still running after {CLI_TIMEOUT_S:.0f} s"
        return result
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    result.create_seconds = time.monotonic() - t0
    final, pending, result.error = wait_all(ids, system_state(system, client), t0 + timeout, alive)
    elapsed = time.monotonic() - t0
    for state in final.values():
        result.states[state] = result.states.get(state, 0) + 1
    if not pending and result.completed == n:
        result.seconds = elapsed
    elif not pending and result.error is None:
        result.error = f"not all COMPLETED: {result.states}"
    return result


def system_state(system: Any, client: RetryingClient) -> Callable[[str], str]:
    return lambda run_id: system.state_of(client, run_id)


def parse_ts(value: str) -> dt.datetime:
    ts = dt.datetime.fromisoformat(value)
    # Naive timestamps from a server are taken as UTC: that is what the contract says it sends.
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------- push-pools


FLOW_SOURCE_PUSH_POOLS = """\
from push_pools import flow


@flow
def trivial():
    return 1
"""


class PushPools:
    """Drives push-pools strictly through the CLI/REST contract, like a user would."""

    label = "push-pools"
    flow_name = "trivial"
    deployment_name = "bench"
    pool = "bench-pool"

    def __init__(self, home: Path, port: int, bin_dir: Path) -> None:
        self.home = home
        self.port = port
        self.bin_dir = bin_dir
        self.cli = str(bin_dir / "push-pools")
        self.api = f"http://127.0.0.1:{port}/api"
        self.env = clean_env(
            {"PUSH_POOLS_HOME": str(home), "PUSH_POOLS_API_URL": self.api}, bin_dir
        )

    @staticmethod
    def default_bin_dir() -> Path:
        # The venv of the interpreter running us (not resolved: a venv's python is a symlink).
        here = Path(sys.executable).parent
        return here if (here / "push-pools").exists() else Path("/work/main/.venv/bin")

    def version(self) -> str:
        try:
            res = run_cli(
                [
                    str(self.bin_dir / "python"),
                    "-c",
                    "import importlib.metadata as m; print(m.version('push-pools'))",
                ],
                self.env,
                self.home,
                timeout=60,
            )
            return res.stdout.strip()
        except BenchError:
            return "unknown"

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
        (flow_dir / "flow.py").write_text(FLOW_SOURCE_PUSH_POOLS)
        run_cli(
            [
                self.cli,
                "deploy",
                "flow.py:trivial",
                "-n",
                self.deployment_name,
                "-p",
                self.pool,
                "--no-prompt",
            ],
            self.env,
            flow_dir,
        )
        url = f"{self.api}/deployments/name/{self.flow_name}/{self.deployment_name}"
        return str(expect_json(client.get(url), "id", url)["id"])

    def create_run(self, client: RetryingClient, dep_id: str, body: dict[str, Any]) -> str:
        url = f"{self.api}/deployments/{dep_id}/runs"
        return str(expect_json(client.post(url, json=body), "id", url)["id"])

    def run_argv(self) -> list[str]:
        return [self.cli, "deployment", "run", f"{self.flow_name}/{self.deployment_name}", "--json"]

    def run_id_from_output(self, stdout: str) -> str | None:
        try:
            return str(json.loads(stdout)["id"])
        except (ValueError, KeyError, TypeError):
            return None

    def state_of(self, client: RetryingClient, run_id: str) -> str:
        url = f"{self.api}/flow_runs/{run_id}"
        return state_name(expect_json(client.get(url), "state", url)["state"])

    def states(self, client: RetryingClient, run_id: str) -> list[dict[str, Any]]:
        url = f"{self.api}/flow_runs/{run_id}/states"
        resp = client.get(url)
        if resp.status_code != 200:
            raise BenchError(f"GET {url} -> {resp.status_code}: {resp.text[:300]}")
        body = resp.json()
        if not isinstance(body, list):
            raise BenchError(f"GET {url}: expected a JSON list, got {resp.text[:300]}")
        return body


def state_name(state: Any) -> str:
    # Prefect nests the state ({"type": ...}); the push-pools contract sends the bare string.
    if isinstance(state, dict):
        return str(state.get("type", "")).upper()
    return str(state).upper()


def expect_json(resp: httpx.Response, key: str, what: str) -> dict[str, Any]:
    if resp.status_code >= 300:
        raise BenchError(f"{resp.request.method} {what} -> {resp.status_code}: {resp.text[:300]}")
    try:
        body = resp.json()
    except ValueError as exc:
        raise BenchError(f"{what}: not JSON: {resp.text[:300]}") from exc
    if not isinstance(body, dict) or key not in body:
        raise BenchError(f"{what}: no {key!r} in response: {resp.text[:300]}")
    return body


# --------------------------------------------------------------------------- stack runner


@dataclass
class StackFigures:
    """Everything measured on one orchestrator during one benchmark run."""

    help_samples: list[float] = field(default_factory=list)
    server_start_s: float | None = None
    idle_rss_mib: float | None = None
    workload: WorkloadResult | None = None
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def help_median(self) -> float | None:
        return statistics.median(self.help_samples) if self.help_samples else None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["help_median_s"] = self.help_median
        return d


class Stack:
    """A server + worker of one orchestrator in a throwaway home, torn down on exit."""

    RSS_SETTLE_S = 2.0  # let startup work (migrations, service loops) finish before reading RSS

    def __init__(self, system: Any, procs: ProcessGroupSet) -> None:
        self.system = system
        self.procs = procs
        self.server: Managed | None = None
        self.worker: Managed | None = None

    def start_server(self, figures: StackFigures, health_timeout: float) -> None:
        t0 = time.monotonic()
        self.server = self.procs.start(
            "server",
            self.system.server_argv(),
            self.system.env,
            self.system.home,
            self.system.home,
        )
        figures.server_start_s = wait_healthy(
            self.system.health_url, self.server, t0, health_timeout
        )
        time.sleep(self.RSS_SETTLE_S)
        figures.idle_rss_mib = rss_mib(self.server.proc.pid)

    def start_worker(self, limit: int) -> None:
        self.worker = self.procs.start(
            "worker",
            self.system.worker_argv(limit),
            self.system.env,
            self.system.home,
            self.system.home,
        )

    def dead(self) -> str | None:
        for m in (self.server, self.worker):
            if m is not None and m.proc.poll() is not None:
                return f"{m.name} exited with {m.proc.returncode}:\n{m.tail()}"
        return None

    def log_tracebacks(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in (self.server, self.worker):
            if m is not None:
                try:
                    counts[m.name] = m.log_path.read_text(errors="replace").count("Traceback")
                except OSError:
                    counts[m.name] = -1
        return counts

    def wait_worker_up(self, seconds: float) -> None:
        # A worker that crashes on start would otherwise show up only as a workload timeout.
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if (msg := self.dead()) is not None:
                raise BenchError(msg)
            time.sleep(0.1)


def run_workload(
    system: Any, stack: Stack, client: RetryingClient, dep_id: str, runs: int, timeout: float
) -> WorkloadResult:
    return run_burst(
        create=lambda: system.create_run(client, dep_id, {}),
        state_of=lambda rid: system.state_of(client, rid),
        n=runs,
        timeout=timeout,
        alive=stack.dead,
    )


@contextlib.contextmanager
def temp_home(prefix: str, keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- reporting


def machine_info() -> dict[str, Any]:
    mem_kib = 0
    with contextlib.suppress(OSError):
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem_kib = int(m.group(1)) if m else 0
    os_name = platform.system()
    with contextlib.suppress(OSError):
        m = re.search(r'^PRETTY_NAME="?([^"\n]*)', Path("/etc/os-release").read_text(), re.M)
        os_name = m.group(1) if m else os_name
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": os_name,
        "python": platform.python_version(),
    }


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} {unit}" if unit == "MiB" else f"{value:.2f} {unit}"


def print_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
        *(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows),
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def write_json(stem: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{stem}-{dt.date.today().isoformat()}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
