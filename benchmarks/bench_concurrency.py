"""The API under concurrent load: many clients reading pools, many runs shipping logs.

    /work/main/.venv/bin/python benchmarks/bench_concurrency.py [--clients 200] [--requests 10]
        [--log-clients 50] [--log-batches 20] [--postgres-url URL | --with-postgres] [--keep]

The server is this checkout's `push-pools server start` (run as `python -m push_pools.cli.main`
with this checkout first on PYTHONPATH), in its own process on a free 127.0.0.1 port with a fresh
PUSH_POOLS_HOME; the load comes from this process over HTTP (asyncio and a minimal keep-alive
HTTP/1.1 client, one connection per client: httpx would cost more CPU than the server), so both
share the machine's cores, as a team's clients and server would not.

1. reads: 5 work pools; `--clients` clients each send `--requests` GET /api/work_pools one
   after the other, all clients at once. Errors (any answer but 200, or no answer within the
   request timeout) are counted by kind; latency p50/p99 (nearest rank) over the answered ones.
2. logs: `--log-clients` flow runs; one client per run posts `--log-batches` batches of
   `--lines` lines to POST /api/flow_runs/{id}/logs, one after the other, all clients at once.
   Lines/s = lines stored (201 answers x lines) / seconds from the first post to the last answer;
   then each run's stored line count is checked against what was acknowledged.

No request is retried: a 503 is counted as an error like any other, so the figure says what a
client that does not retry would see. Every wait is bounded: `--timeout` per request and
`--deadline` per section (requests not sent by then are counted as "not sent").
Prints a table on stdout (progress on stderr) and writes
benchmarks/results/bench-concurrency-<date>.json; exits 1 if a step failed (errors under load
are a figure, not a failure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    BENCH_DIR,
    BenchError,
    ProcessGroupSet,
    clean_env,
    free_port,
    log,
    machine_info,
    print_table,
    signals_as_interrupt,
    temp_home,
    wait_healthy,
    write_json,
)
from bench_dispatch import (
    fresh_postgres_database,
    normalize_postgres_url,
    percentile,
    throwaway_postgres,
)

REPO = BENCH_DIR.parent
POOLS = 5
HEALTH_TIMEOUT_S = 30.0


@dataclass
class Section:
    """What one burst of concurrent requests gave."""

    requests: int = 0
    answered: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def record(self, started: float, outcome: str) -> None:
        self.requests += 1
        if outcome == "ok":
            self.answered += 1
            self.latencies.append(time.monotonic() - started)
        else:
            self.errors[outcome] += 1

    def summary(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "requests": self.requests,
            "ok": self.answered,
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "seconds": round(self.seconds, 3),
            "p50_ms": round(percentile(lat, 50) * 1000, 1) if lat else None,
            "p99_ms": round(percentile(lat, 99) * 1000, 1) if lat else None,
            "max_ms": round(max(lat) * 1000, 1) if lat else None,
            "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
        }


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just what these requests need.

    httpx's async client costs more CPU per request than the server does on this machine, so
    with it the figures measured the load generator; this one costs a few microseconds."""

    def __init__(self, api: str, timeout: float) -> None:
        url = httpx.URL(api)
        self.host, self.port, self.prefix = url.host, url.port or 80, url.path.rstrip("/")
        self.timeout = timeout
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, method: str, path: str, body: Any = None) -> str:
        """One request; "ok" or the kind of error (status code or what went wrong)."""
        try:
            return await asyncio.wait_for(self._exchange(method, path, body), self.timeout)
        except TimeoutError:
            kind = "timeout"
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            kind = f"connection: {type(exc).__name__}"
        self.close()  # the connection's state is unknown: the next request opens a new one
        return kind

    async def _exchange(self, method: str, path: str, body: Any) -> str:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        writer.write(head.encode() + b"\r\n" + payload)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
        await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").strip() == "close":
            self.close()
        return "ok" if status < 300 else str(status)

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def read_burst(api: str, clients: int, requests: int, timeout: float, deadline: float):
    section = Section()

    async def one_client() -> None:
        connection = Connection(api, timeout)
        for _ in range(requests):
            if time.monotonic() > deadline:
                section.errors["not sent"] += 1
                continue
            started = time.monotonic()
            section.record(started, await connection.send("GET", "/work_pools"))
        connection.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    section.seconds = time.monotonic() - t0
    return section


async def log_burst(
    api: str, run_ids: list[str], batches: int, lines: int, timeout: float, deadline: float
) -> tuple[Section, dict[str, int]]:
    section = Section()
    acknowledged: Counter[str] = Counter()

    async def one_client(run_id: str) -> None:
        connection = Connection(api, timeout)
        for batch in range(batches):
            if time.monotonic() > deadline:
                section.errors["not sent"] += 1
                continue
            body = [
                {"level": "INFO", "message": f"batch {batch} line {i}: " + "x" * 60}
                for i in range(lines)
            ]
            started = time.monotonic()
            outcome = await connection.send("POST", f"/flow_runs/{run_id}/logs", body)
            section.record(started, outcome)
            if outcome == "ok":
                acknowledged[run_id] += lines
        connection.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one_client(r) for r in run_ids))
    section.seconds = time.monotonic() - t0
    return section, dict(acknowledged)


def expect(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 300:
        raise BenchError(f"{what} -> {response.status_code}: {response.text[:300]}")
    return response.json()


def seed(api: str, runs: int) -> list[str]:
    """POOLS work pools and one deployment with `runs` runs, through the API."""
    with httpx.Client(timeout=30) as client:
        for i in range(POOLS):
            body = {"name": f"bench-pool-{i}", "type": "process"}
            expect(client.post(f"{api}/work_pools", json=body), "create pool")
        deployment = expect(
            client.post(
                f"{api}/deployments",
                json={
                    "name": "bench",
                    "flow_name": "bench-flow",
                    "entrypoint": "flow.py:bench",
                    "work_pool_name": "bench-pool-0",
                },
            ),
            "create deployment",
        )
        # Far in the future: no worker or dispatcher touches these runs while logs arrive.
        later = {"scheduled_time": "2100-01-01T00:00:00+00:00"}
        return [
            expect(
                client.post(f"{api}/deployments/{deployment['id']}/runs", json=later), "create run"
            )["id"]
            for _ in range(runs)
        ]


def stored_lines(api: str, run_ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    with httpx.Client(timeout=60) as client:
        for run_id in run_ids:
            after, total = 0, 0
            while True:
                page = expect(
                    client.get(
                        f"{api}/flow_runs/{run_id}/logs", params={"after": after, "limit": 1000}
                    ),
                    "read logs",
                )
                if not page:
                    break
                total += len(page)
                after = page[-1]["id"]
            counts[run_id] = total
    return counts


@contextlib.contextmanager
def server(home: Path, database_url: str | None, procs: ProcessGroupSet) -> Iterator[str]:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    extra = {"PUSH_POOLS_HOME": str(home), "PUSH_POOLS_API_URL": api, "PYTHONPATH": str(REPO)}
    if database_url:
        extra["PUSH_POOLS_DATABASE_URL"] = database_url
    env = clean_env(extra, Path(sys.executable).parent)
    argv = [sys.executable, "-m", "push_pools.cli.main", "server", "start"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    t0 = time.monotonic()
    started = procs.start("server", argv, env, home, home)
    try:
        wait_healthy(f"{api}/health", started, t0, HEALTH_TIMEOUT_S)
        yield api
    finally:
        procs.stop_all()
        text = started.log_path.read_text(errors="replace")
        if "Traceback" in text:
            count = text.count("Traceback")
            log(f"server log has {count} tracebacks; last lines:\n{started.tail(8)}")


def run_backend(label: str, home: Path, database_url: str | None, args: Any) -> dict[str, Any]:
    # Each section gets its own server and store: the logs figure must not measure the
    # aftermath of the read burst.
    result: dict[str, Any] = {}
    if "reads" in args.only:
        log(f"{label}: {args.clients} clients x {args.requests} GET /api/work_pools")
        with server(home / "reads", database_url, ProcessGroupSet()) as api:
            seed(api, 0)
            deadline = time.monotonic() + args.deadline
            reads = asyncio.run(
                read_burst(api, args.clients, args.requests, args.timeout, deadline)
            )
        log(f"{label}: reads {reads.summary()}")
        result["reads"] = reads.summary()
        if database_url:
            reset_postgres(database_url)
    if "logs" not in args.only:
        return result
    log(f"{label}: {args.log_clients} runs x {args.log_batches} batches of {args.lines} lines")
    with server(home / "logs", database_url, ProcessGroupSet()) as api:
        run_ids = seed(api, args.log_clients)
        deadline = time.monotonic() + args.deadline
        logs, acknowledged = asyncio.run(
            log_burst(api, run_ids, args.log_batches, args.lines, args.timeout, deadline)
        )
        log(f"{label}: logs {logs.summary()}")
        try:
            stored: dict[str, int] | None = stored_lines(api, run_ids)
        except (BenchError, httpx.HTTPError) as exc:
            log(f"{label}: could not read the stored logs back: {exc}")
            stored = None
    lines_ok = sum(acknowledged.values())
    missing = None
    if stored is not None:
        missing = sum(1 for r, n in acknowledged.items() if stored.get(r, 0) < n)
    result["logs"] = {
        **logs.summary(),
        "lines_acknowledged": lines_ok,
        "lines_stored": None if stored is None else sum(stored.values()),
        "runs_missing_acknowledged_lines": missing,
        "lines_per_s": round(lines_ok / logs.seconds, 1) if logs.seconds else None,
    }
    return result


def reset_postgres(url: str) -> None:
    """An empty schema for the next section's server (it creates the tables again)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def rows(results: dict[str, dict[str, Any]], args: Any) -> list[list[str]]:
    def ms(v: Any) -> str:
        return "n/a" if v is None else f"{v:.1f} ms"

    def errors(s: dict[str, Any]) -> str:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(s["errors_by_kind"].items()))
        return f"{s['errors']} ({kinds})" if kinds else "0"

    reads = f"GET /api/work_pools, {args.clients} clients x {args.requests}"
    logs = f"POST logs, {args.log_clients} clients x {args.log_batches} x {args.lines} lines"
    out: list[list[str]] = []
    for label, r in results.items():
        if rd := r.get("reads"):
            out += [
                [label, f"{reads}: errors", errors(rd)],
                [label, f"{reads}: p50 / p99", f"{ms(rd['p50_ms'])} / {ms(rd['p99_ms'])}"],
                [label, f"{reads}: wall", f"{rd['seconds']:.2f} s"],
            ]
        if not (lg := r.get("logs")):
            continue
        out += [
            [label, f"{logs}: errors", errors(lg)],
            [label, f"{logs}: lines/s", f"{lg['lines_per_s'] or 0:,.0f}"],
            [label, f"{logs}: p50 / p99", f"{ms(lg['p50_ms'])} / {ms(lg['p99_ms'])}"],
            [
                label,
                f"{logs}: acknowledged / stored",
                f"{lg['lines_acknowledged']} / {lg['lines_stored'] or 'not read'}",
            ],
        ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--log-clients", type=int, default=50)
    parser.add_argument("--log-batches", type=int, default=20)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--deadline", type=float, default=180.0, help="per section, seconds")
    parser.add_argument("--postgres-url", help="a PostgreSQL server (user needs CREATEDB)")
    parser.add_argument("--with-postgres", action="store_true", help="and a throwaway one")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--only", action="append", choices=("reads", "logs"), help="repeatable; default both"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp home (server.log)")
    args = parser.parse_args()
    args.only = args.only or ["reads", "logs"]

    results: dict[str, dict[str, Any]] = {}
    failed = False
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    with signals_as_interrupt(), contextlib.ExitStack() as stack:
        try:
            if not args.skip_sqlite:
                home = stack.enter_context(temp_home("push-pools-bench-conc-", args.keep))
                results["SQLite"] = run_backend("SQLite", home, None, args)
            pg_url = args.postgres_url
            if args.with_postgres:
                log("starting a throwaway PostgreSQL (scripts/postgres.sh)")
                pg_url = stack.enter_context(throwaway_postgres())
            if pg_url:
                home = stack.enter_context(temp_home("push-pools-bench-conc-pg-", args.keep))
                url = stack.enter_context(
                    fresh_postgres_database(normalize_postgres_url(pg_url), "concurrency")
                )
                results["PostgreSQL"] = run_backend("PostgreSQL", home, url, args)
        except (BenchError, OSError, httpx.HTTPError) as exc:
            failed = True
            log(f"FAIL: {exc}")
            traceback.print_exc(file=sys.stderr)
    table = print_table(["store", "figure", "value"], rows(results, args)) if results else ""
    path = write_json(
        "bench-concurrency",
        {
            "started": started,
            "machine": machine_info(),
            "load_average": list(os.getloadavg()),
            "args": vars(args),
            "results": results,
            "table": table,
        },
    )
    log(f"wrote {path}")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
