"""push-pools' own figures (no Prefect); meant to finish in well under a minute.

    /work/main/.venv/bin/python benchmarks/bench_push_pools.py [--runs 20] [--keep]

Exits 1 if any step fails or a cloud SDK is imported by the CLI (printed as FAIL lines).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    FORBIDDEN_IMPORT_PREFIXES,
    BenchError,
    ProcessGroupSet,
    PushPools,
    RetryingClient,
    Stack,
    StackFigures,
    cold_times,
    fmt,
    forbidden_imports,
    free_port,
    imported_modules,
    log,
    machine_info,
    parse_ts,
    print_table,
    run_workload,
    signals_as_interrupt,
    state_name,
    temp_home,
    wait_all,
    write_json,
)

WORKER_LIMIT = 4
WORKER_SETTLE_S = 3.0
WORKLOAD_TIMEOUT_S = 60.0
SCHEDULED_RUNS = 10
SCHEDULED_LEAD_S = 2.0
SCHEDULED_STAGGER_S = 0.3
SCHEDULED_TIMEOUT_S = 30.0


def import_check(
    system: PushPools, args: list[str], figures: StackFigures, fails: list[str]
) -> int:
    """Modules a CLI invocation imports; cloud SDKs must stay out of the cold path."""
    mods = imported_modules(
        [str(system.bin_dir / "python"), system.cli, *args], system.env, system.home
    )
    cmd = " ".join(["push-pools", *args])
    bad = forbidden_imports(mods)
    figures.extra[f"imports[{cmd}]"] = {"count": len(set(mods)), "forbidden": bad}
    for m in bad:
        fails.append(f"FAIL: `{cmd}` imports {m}")
    return len(set(mods))


def scheduled_latency(
    system: PushPools, stack: Stack, client: RetryingClient, dep_id: str
) -> dict[str, Any]:
    """Delay from each run's scheduled_time to its RUNNING state's timestamp (server clock)."""
    base = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=SCHEDULED_LEAD_S)
    planned: dict[str, dt.datetime] = {}
    for i in range(SCHEDULED_RUNS):
        when = base + dt.timedelta(seconds=i * SCHEDULED_STAGGER_S)
        rid = system.create_run(client, dep_id, {"scheduled_time": when.isoformat()})
        planned[rid] = when
    deadline = time.monotonic() + SCHEDULED_LEAD_S + SCHEDULED_TIMEOUT_S
    final, pending, error = wait_all(
        list(planned), lambda r: system.state_of(client, r), deadline, stack.dead
    )
    if error:
        raise BenchError(f"scheduled runs: {error}")
    if pending:
        raise BenchError(
            f"scheduled runs: {len(pending)}/{SCHEDULED_RUNS} not finished "
            f"{SCHEDULED_TIMEOUT_S:.0f} s after their scheduled time"
        )
    delays: list[float] = []
    problems: list[str] = []
    for rid, when in planned.items():
        history = system.states(client, rid)
        running = [
            s for s in history if isinstance(s, dict) and state_name(s.get("type", "")) == "RUNNING"
        ]
        if not running or "timestamp" not in running[0]:
            problems.append(
                f"run {rid} ({final.get(rid)}): no RUNNING state with a timestamp "
                f"in {history!r:.200}"
            )
            continue
        delays.append((parse_ts(str(running[0]["timestamp"])) - when).total_seconds())
    if problems:
        raise BenchError("scheduled runs: " + "; ".join(problems[:3]))
    return {
        "runs": SCHEDULED_RUNS,
        "delays_s": delays,
        "median_s": statistics.median(delays),
        "max_s": max(delays),
        # A negative delay means a run started before its scheduled time: a bug, not speed.
        "early_starts": sum(1 for d in delays if d < 0),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="flow runs in the burst (default 20)")
    ap.add_argument(
        "--bin-dir",
        type=Path,
        default=None,
        help="venv bin/ with push-pools (default: this python's, else the project's)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp home (logs) for debugging")
    args = ap.parse_args()

    figures = StackFigures()
    fails: list[str] = []
    ls_samples: list[float] = []
    sched: dict[str, Any] | None = None
    help_mods = ls_mods = None
    started = time.monotonic()
    with signals_as_interrupt(), temp_home("push-pools-bench-", args.keep) as home:
        system = PushPools(home, free_port(), args.bin_dir or PushPools.default_bin_dir())
        version = system.version()
        procs = ProcessGroupSet()
        stack = Stack(system, procs)
        raw = httpx.Client(timeout=30.0)
        client = RetryingClient(raw)
        try:
            log("--help x5, imports")
            figures.help_samples = cold_times(system.help_argv(), system.env, home)
            help_mods = import_check(system, ["--help"], figures, fails)
            log("server start")
            stack.start_server(figures, 60.0)
            system.create_pool()
            log("work-pool ls x5, imports")
            ls_samples = cold_times([system.cli, "work-pool", "ls"], system.env, home)
            ls_mods = import_check(system, ["work-pool", "ls"], figures, fails)
            stack.start_worker(WORKER_LIMIT)
            t_worker = time.monotonic()
            dep_id = system.deploy(client)
            stack.wait_worker_up(WORKER_SETTLE_S - (time.monotonic() - t_worker))
            log(f"{args.runs} runs")
            figures.workload = run_workload(
                system, stack, client, dep_id, args.runs, WORKLOAD_TIMEOUT_S
            )
            if figures.workload.seconds is None:
                fails.append(f"FAIL: workload {figures.workload.summary()}")
            log(f"{SCHEDULED_RUNS} scheduled runs")
            sched = scheduled_latency(system, stack, client, dep_id)
            if sched["early_starts"]:
                fails.append(
                    f"FAIL: {sched['early_starts']} runs RUNNING before their scheduled_time"
                )
        except BenchError as exc:
            figures.errors.append(str(exc))
            fails.append(f"FAIL: {exc}")
        except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError) as exc:
            figures.errors.append(f"{type(exc).__name__}: {exc}")
            fails.append(f"FAIL: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        finally:
            log("tearing down")
            raw.close()
            procs.stop_all()
            figures.extra["http_retries"] = client.retries
            figures.extra["log_tracebacks"] = stack.log_tracebacks()

    forbidden = ", ".join(p + "*" for p in FORBIDDEN_IMPORT_PREFIXES)
    bad_imports = any(v["forbidden"] for k, v in figures.extra.items() if k.startswith("imports"))
    import_cell = "n/a" if help_mods is None else "FAIL" if bad_imports else "none"
    rows = [
        ["--help, cold process (median of 5)", fmt(figures.help_median, "s")],
        [
            "work-pool ls, cold process (median of 5)",
            fmt(statistics.median(ls_samples) if ls_samples else None, "s"),
        ],
        [
            "modules imported by --help / work-pool ls",
            f"{help_mods if help_mods is not None else 'n/a'} / "
            f"{ls_mods if ls_mods is not None else 'n/a'}",
        ],
        [f"imports of {forbidden}", import_cell],
        ["server start to healthy", fmt(figures.server_start_s, "s")],
        ["idle server RSS (tree)", fmt(figures.idle_rss_mib, "MiB")],
        [
            f"{args.runs} runs, limit {WORKER_LIMIT}: create -> all COMPLETED",
            figures.workload.short() if figures.workload else "n/a",
        ],
        [
            f"scheduled -> RUNNING, {SCHEDULED_RUNS} runs (median)",
            fmt(sched["median_s"] if sched else None, "s"),
        ],
        [
            f"scheduled -> RUNNING, {SCHEDULED_RUNS} runs (max)",
            fmt(sched["max_s"] if sched else None, "s"),
        ],
    ]
    print()
    table = print_table(["metric", f"push-pools {version}"], rows)
    for line in fails:
        print(line)
    payload = {
        "benchmark": "bench_push_pools",
        "date": time.strftime("%Y-%m-%d"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "version": version,
        "runs": args.runs,
        "worker_limit": WORKER_LIMIT,
        **figures.to_json(),
        "work_pool_ls_samples": ls_samples,
        "work_pool_ls_median_s": statistics.median(ls_samples) if ls_samples else None,
        "scheduled_latency": sched,
        "fails": fails,
        "wall_s": time.monotonic() - started,
        "table": table,
    }
    path = write_json("bench-push-pools", payload)
    print(f"\nwrote {path} ({payload['wall_s']:.0f} s)")
    return 1 if fails else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was torn down", file=sys.stderr)
        sys.exit(130)
