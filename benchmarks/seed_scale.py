"""Fill a push-pools store with a large, plausible history, fast (bulk inserts, not the API).

    python benchmarks/seed_scale.py sqlite:////tmp/scale/store.db
    python benchmarks/seed_scale.py postgresql+psycopg://user@127.0.0.1:5432/db
    [--deployments 10000] [--runs 1000000] [--pools 20] [--seed 1]

The store must be new (empty): it is created at the current schema first. What it gets:
pools of type `process` with their default queue; deployments with cron schedules spread over
the pools; runs spread over 90 days of history in varied final states, a few in flight, and the
runs the scheduler would already have made for the next hour (keyed as it keys them), so the
first tick a benchmark measures is a steady-state one. Runs get no state history rows: no
benchmarked query reads them. Deterministic for a given --seed, except that times are relative
to now.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from push_pools import schedules as schedule_rules
from push_pools.executors.process.template import default_template
from push_pools.scheduler import HORIZON, MAX_RUNS_PER_SCHEDULE, run_key
from push_pools.states import DISPLAY_NAMES, StateType
from push_pools.store.db import Store
from push_pools.store.tables import Deployment, DeploymentSchedule, FlowRun, WorkPool, WorkQueue

# Cron expressions and how many deployments in 100 use each: most run a few times a day, some
# every few minutes (those make most of the next hour's scheduled runs).
CRONS = [
    ("0 2 * * *", 30),
    ("0 */6 * * *", 20),
    ("30 * * * *", 20),
    ("*/15 * * * *", 20),
    ("*/5 * * * *", 10),
]
TIMEZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
# History: state -> weight. In-flight states are rare, as on a real server.
HISTORY_STATES = [
    (StateType.COMPLETED, 880),
    (StateType.FAILED, 60),
    (StateType.CRASHED, 15),
    (StateType.CANCELLED, 25),
    (StateType.RUNNING, 8),
    (StateType.PENDING, 4),
    (StateType.LATE, 4),
    (StateType.CANCELLING, 4),
]
HISTORY_DAYS = 90
BATCH = 10_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="SQLAlchemy URL of a new, empty store")
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.deployments < 1 or args.pools < 1 or args.runs < 0:
        parser.error("--deployments and --pools must be at least 1, --runs at least 0")

    started = time.monotonic()
    store = Store(args.url)
    store.migrate()
    with store.engine.begin() as connection:
        if connection.scalar(select(func.count()).select_from(FlowRun)) or connection.scalar(
            select(func.count()).select_from(Deployment)
        ):
            print("error: the store is not empty; seed a new one", file=sys.stderr)
            return 1
    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    with store.engine.begin() as connection:
        if store.is_sqlite:
            # Random ids land all over the indexes: keep them in memory, not on disk (1 GiB).
            connection.exec_driver_sql("PRAGMA cache_size=-1000000")
        pools = _seed_pools(connection, rng, args.pools, now)
        deployments = _seed_deployments(connection, rng, pools, args.deployments, now)
        future = _seed_future_runs(connection, rng, deployments, now, args.runs)
        _log(f"{len(pools)} pools, {len(deployments)} deployments, {future} scheduled runs ahead")
        _seed_history(connection, rng, deployments, now, args.runs - future)
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    store.dispose()
    _log(f"done in {time.monotonic() - started:.0f} s")
    return 0


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _seed_pools(
    connection: Connection, rng: random.Random, count: int, now: datetime
) -> list[tuple[str, str]]:
    """(pool id, default queue id) per pool."""
    pools = []
    template = default_template()
    for i in range(count):
        pool_id, queue_id = _id(rng), _id(rng)
        connection.execute(
            WorkPool.__table__.insert(),
            {
                "id": pool_id,
                "name": f"pool-{i:03d}",
                "type": "process",
                "base_job_template": template,
                "paused": False,
                "created": now,
                "updated": now,
            },
        )
        connection.execute(
            WorkQueue.__table__.insert(),
            {
                "id": queue_id,
                "work_pool_id": pool_id,
                "name": "default",
                "priority": 1,
                "paused": False,
                "created": now,
                "updated": now,
            },
        )
        pools.append((pool_id, queue_id))
    return pools


class Seeded:
    __slots__ = ("id", "flow_name", "pool_id", "queue_id", "spec")

    def __init__(
        self, id: str, flow_name: str, pool_id: str, queue_id: str, spec: dict[str, Any]
    ) -> None:
        self.id, self.flow_name, self.pool_id, self.queue_id, self.spec = (
            id,
            flow_name,
            pool_id,
            queue_id,
            spec,
        )


def _seed_deployments(
    connection: Connection,
    rng: random.Random,
    pools: list[tuple[str, str]],
    count: int,
    now: datetime,
) -> list[Seeded]:
    crons = [cron for cron, weight in CRONS for _ in range(weight)]
    seeded: list[Seeded] = []
    deployment_rows: list[dict[str, Any]] = []
    schedule_rows: list[dict[str, Any]] = []
    for i in range(count):
        pool_id, queue_id = pools[i % len(pools)]
        spec = schedule_rules.schedule_to_dict(
            schedule_rules.parse_schedule(cron=rng.choice(crons), timezone=rng.choice(TIMEZONES))
        )
        deployment = Seeded(_id(rng), f"flow-{i // 100:03d}", pool_id, queue_id, spec)
        seeded.append(deployment)
        deployment_rows.append(
            {
                "id": deployment.id,
                "name": f"deployment-{i % 100:02d}",
                "flow_name": deployment.flow_name,
                "work_pool_id": pool_id,
                "work_queue_id": queue_id,
                "entrypoint": "flows.py:main",
                "pull_steps": [],
                "parameters": {"n": i},
                "parameter_schema": {},
                "job_variables": {},
                "tags": ["scale"],
                "paused": False,
                "created": now,
                "updated": now,
            }
        )
        schedule_rows.append(
            {
                "id": _id(rng),
                "deployment_id": deployment.id,
                "spec": spec,
                "active": True,
                "created": now,
            }
        )
    connection.execute(Deployment.__table__.insert(), deployment_rows)
    connection.execute(DeploymentSchedule.__table__.insert(), schedule_rows)
    return seeded


def _run_row(
    rng: random.Random,
    deployment: Seeded,
    state: StateType,
    scheduled: datetime,
    key: str | None,
) -> dict[str, Any]:
    finished = state in (
        StateType.COMPLETED,
        StateType.FAILED,
        StateType.CRASHED,
        StateType.CANCELLED,
    )
    started = state in (StateType.RUNNING, StateType.CANCELLING) or (
        finished and state != StateType.CANCELLED
    )
    start = scheduled + timedelta(seconds=rng.uniform(0.1, 5)) if started else None
    end = start + timedelta(seconds=rng.uniform(1, 600)) if finished and start else None
    if state == StateType.CANCELLED:
        end = scheduled
    return {
        "id": _id(rng),
        "name": f"{deployment.flow_name}-{rng.getrandbits(24):06x}",
        "deployment_id": deployment.id,
        "flow_name": deployment.flow_name,
        "work_pool_id": deployment.pool_id,
        "work_queue_id": deployment.queue_id,
        "idempotency_key": key,
        "auto_scheduled": key is not None,
        "state_type": state.value,
        "state_name": DISPLAY_NAMES[state],
        "state_message": None,
        "state_timestamp": end or start or scheduled,
        "scheduled_time": scheduled,
        "start_time": start,
        "end_time": end,
        "parameters": {},
        "job_variables": {},
        "tags": ["scale"],
        "worker_name": "worker-1" if started else None,
        "infrastructure_id": None,
        "infrastructure_released": finished,
        "run_count": 1 if started else 0,
        "result": None,
        "created": scheduled,
        "updated": end or start or scheduled,
    }


def _seed_future_runs(
    connection: Connection,
    rng: random.Random,
    deployments: list[Seeded],
    now: datetime,
    budget: int,
) -> int:
    """The runs the scheduler makes for the next hour, as it would have made them."""
    rows: list[dict[str, Any]] = []
    count = 0
    for deployment in deployments:
        spec = schedule_rules.schedule_from_dict(deployment.spec)
        for when in schedule_rules.next_fire_times(
            spec, now, now + HORIZON, limit=MAX_RUNS_PER_SCHEDULE
        ):
            if count >= budget:
                break
            rows.append(
                _run_row(rng, deployment, StateType.SCHEDULED, when, run_key(deployment.id, when))
            )
            count += 1
        if len(rows) >= BATCH:
            connection.execute(FlowRun.__table__.insert(), rows)
            rows = []
    if rows:
        connection.execute(FlowRun.__table__.insert(), rows)
    return count


def _history(
    rng: random.Random, deployments: list[Seeded], now: datetime, count: int
) -> Iterator[dict[str, Any]]:
    states = [state for state, _ in HISTORY_STATES]
    weights = [weight for _, weight in HISTORY_STATES]
    span = HISTORY_DAYS * 86_400
    for _ in range(count):
        deployment = rng.choice(deployments)
        state = rng.choices(states, weights)[0]
        if state in (StateType.RUNNING, StateType.PENDING, StateType.CANCELLING, StateType.LATE):
            ago = rng.uniform(20, 3_600)  # in flight: recent
        else:
            ago = rng.uniform(60, span)
        yield _run_row(rng, deployment, state, now - timedelta(seconds=ago), None)


def _seed_history(
    connection: Connection,
    rng: random.Random,
    deployments: list[Seeded],
    now: datetime,
    count: int,
) -> None:
    rows: list[dict[str, Any]] = []
    done = 0
    for row in _history(rng, deployments, now, count):
        rows.append(row)
        if len(rows) >= BATCH:
            connection.execute(FlowRun.__table__.insert(), rows)
            done += len(rows)
            rows = []
            if done % 100_000 == 0:
                _log(f"{done} past runs")
    if rows:
        connection.execute(FlowRun.__table__.insert(), rows)


if __name__ == "__main__":
    sys.exit(main())
