"""Fuzz every API operation from the server's own OpenAPI document (schemathesis, in-process).

Each operation gets valid and invalid requests, some aimed at real objects (seeded pool, queue,
deployment, runs, block). No request may end in a server error, responses must match their
documented schema, and afterwards the store must still be consistent and the scheduler must
still be able to tick.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from sqlalchemy import func, select

from push_pools.api.app import create_app
from push_pools.models import (
    BlockCreate,
    DeploymentCreate,
    RunCreate,
    ScheduleIn,
    StateProposal,
    WorkPoolCreate,
    WorkQueueCreate,
)
from push_pools.scheduler import schedule_due_runs
from push_pools.states import StateType
from push_pools.store import blocks as block_store
from push_pools.store import deployments as deployment_store
from push_pools.store import pools as pool_store
from push_pools.store import runs as run_store
from push_pools.store.db import Store
from push_pools.store.tables import (
    Block,
    Deployment,
    FlowRun,
    FlowRunState,
    WorkPool,
    WorkQueue,
)
from tests.pg_databases import database_for, reset_postgres, server_url

# On PostgreSQL too when PUSH_POOLS_TEST_DATABASE_URL is set: the module's store lives there.
pytestmark = pytest.mark.store

MAX_EXAMPLES = int(os.environ.get("PUSH_POOLS_FUZZ_EXAMPLES", "20"))
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("PUSH_POOLS_FUZZ_RANDOM"),
    phases=[Phase.explicit, Phase.generate],  # report the first failure, unshrunk: fast
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


# Every answer, errors included, must match what the OpenAPI document says (the app documents
# its {"detail": str, "code": str} error shape for 422).
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
REQUEST_TIMEOUT = 15  # seconds; a long poll that ignores wait_seconds=0 fails instead of hanging


def _operation_labels() -> list[str]:
    """The operations the server documents, read from its OpenAPI document at collection."""
    with tempfile.TemporaryDirectory() as directory:
        store = Store(f"sqlite:///{directory}/openapi.db")
        try:
            document = create_app(store, api_key="", run_scheduler=False).openapi()
        finally:
            store.dispose()
    return [f"{m.upper()} {path}" for path, methods in document["paths"].items() for m in methods]


OPERATIONS = _operation_labels()


@dataclass
class Api:
    store: Store
    schema: Any


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    pg_server = server_url()
    if pg_server:
        # Its own database: the per-test resets of the worker's database would wipe this
        # module-long store between its tests.
        url = database_for(pg_server, "fuzz")
        reset_postgres(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'store.db'}"
    store = Store(url)
    # In-process requests name the host "testserver": that is this server's URL here.
    app = create_app(store, api_key="", run_scheduler=False, api_url="http://testserver/api")
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    yield Api(store, schema)
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()
    store.dispose()


# --- seed data ---------------------------------------------------------------------------------

SEED_POOL = "pool"
SEED_QUEUE = "high"
SEED_FLOW = "seed-flow"
SEED_DEPLOYMENT = "seed"
SEED_BLOCK = "seed-block"


def seed(store: Store) -> dict[str, list[str]]:
    """(Re)create the seeded objects fuzzing may have deleted; returns real path values."""
    with store.session() as session:
        if session.scalar(select(WorkPool).where(WorkPool.name == SEED_POOL)) is None:
            pool_store.create_pool(session, WorkPoolCreate(name=SEED_POOL, type="process"))
        pool = pool_store.get_pool(session, SEED_POOL)
        if SEED_QUEUE not in {q.name for q in pool_store.list_queues(session, pool)}:
            pool_store.create_queue(session, pool, WorkQueueCreate(name=SEED_QUEUE, priority=2))
        deployment = session.scalar(
            select(Deployment).where(
                Deployment.flow_name == SEED_FLOW, Deployment.name == SEED_DEPLOYMENT
            )
        )
        pool = session.get(WorkPool, deployment.work_pool_id) if deployment else None
        if deployment is None or pool is None or pool.deleted:
            # A forced pool delete leaves the deployment paused on the deleted pool: deploying
            # it again puts it back in the (re-created) seed pool.
            deployment, _ = deployment_store.upsert_deployment(
                session,
                DeploymentCreate(
                    name=SEED_DEPLOYMENT,
                    flow_name=SEED_FLOW,
                    entrypoint="flows.py:greet",
                    work_pool_name=SEED_POOL,
                    parameter_schema={
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "times": {"type": "integer"}},
                    },
                    schedules=[ScheduleIn(cron="*/5 * * * *")],
                ),
            )
        runs = list(
            session.scalars(select(FlowRun).where(FlowRun.deployment_id == deployment.id).limit(20))
        )
        if not any(r.state_type == "SCHEDULED" for r in runs):
            runs.append(deployment_store.create_run(session, deployment, RunCreate()))
        if not any(r.state_type == "RUNNING" for r in runs):
            run = deployment_store.create_run(
                session,
                deployment,
                RunCreate(scheduled_time=datetime.now(UTC) - timedelta(seconds=1)),
            )
            for state in (StateType.PENDING, StateType.RUNNING):
                run_store.propose_state(
                    session, run.id, StateProposal(type=state, worker_name="fuzz-worker")
                )
            run_store.add_logs(session, run.id, [])
            runs.append(run)
        if session.scalar(select(Block).where(Block.name == SEED_BLOCK)) is None:
            from push_pools.blocks import SecretBox

            block_store.create_block(
                session,
                BlockCreate(name=SEED_BLOCK, block_type="json", data={"value": {"a": 1}}),
                SecretBox.from_environment(),
            )
        return {
            "deployment_id": [deployment.id],
            "run_id": [r.id for r in runs],
        }


def real_path_parameters(path: str, ids: dict[str, list[str]]) -> list[dict[str, str]]:
    """Path parameter sets naming seeded objects, for an operation's path."""
    if path.startswith("/api/work_pool_types/"):
        return [{"pool_type": "process"}]
    if path.startswith("/api/work_pools/{name}/queues/{queue}"):
        return [{"name": SEED_POOL, "queue": q} for q in (SEED_QUEUE, "default")]
    if path.startswith("/api/work_pools/{name}"):
        return [{"name": SEED_POOL}]
    if path.startswith("/api/blocks/{name}"):
        return [{"name": SEED_BLOCK}]
    if path.startswith("/api/deployments/name/"):
        return [{"flow_name": SEED_FLOW, "name": SEED_DEPLOYMENT}]
    if "{deployment_id}" in path:
        return [{"deployment_id": i} for i in ids["deployment_id"]]
    if "{run_id}" in path:
        return [{"run_id": i} for i in ids["run_id"]]
    return []


def cap_long_poll(case: Any) -> Any:
    """Long polls answer at once: fuzzing must not park a request for up to a minute."""
    if isinstance(case.body, dict) and "wait_seconds" in case.body:
        case.body = {**case.body, "wait_seconds": 0}
    return case


# --- store invariants --------------------------------------------------------------------------


def inconsistencies(store: Store) -> list[str]:
    problems: list[str] = []
    with store.session() as session:
        latest_id = (
            select(FlowRunState.flow_run_id, func.max(FlowRunState.id).label("latest"))
            .group_by(FlowRunState.flow_run_id)
            .subquery()
        )
        rows = session.execute(
            select(FlowRun.id, FlowRun.state_type, FlowRunState.type)
            .outerjoin(latest_id, latest_id.c.flow_run_id == FlowRun.id)
            .outerjoin(FlowRunState, FlowRunState.id == latest_id.c.latest)
        ).all()
        for run_id, current, latest in rows:
            if current != latest:
                problems.append(f"run {run_id} is {current} but its latest state row is {latest}")
        pools = session.scalars(select(WorkPool)).all()
        for pool in pools:
            names = {q.name for q in pool_store.list_queues(session, pool)}
            if "default" not in names:
                problems.append(f"work pool {pool.name!r} has no 'default' queue: {sorted(names)}")
        pool_ids = {p.id for p in pools}
        for queue in session.scalars(select(WorkQueue)):
            if queue.work_pool_id not in pool_ids:
                problems.append(f"queue {queue.name!r} is in missing pool {queue.work_pool_id}")
        queues = {q.id: q for q in session.scalars(select(WorkQueue))}
        for deployment in session.scalars(select(Deployment)):
            queue = queues.get(deployment.work_queue_id or "")
            if deployment.work_pool_id and (
                queue is None or queue.work_pool_id != deployment.work_pool_id
            ):
                problems.append(
                    f"deployment {deployment.flow_name}/{deployment.name} is in a pool but not "
                    "in one of its queues"
                )
    return problems


# --- the fuzzing -------------------------------------------------------------------------------


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_survives_fuzzing(api: Api, label: str) -> None:
    ids = seed(api.store)
    operation = api.schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is in the OpenAPI document but not in the schema"
    real = real_path_parameters(operation.path, ids)
    strategies = [
        operation.as_strategy(),
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    ]
    if real:
        strategies.append(
            st.sampled_from(real).flatmap(lambda p: operation.as_strategy(path_parameters=p))
        )
    seen_statuses: set[int] = set()

    @FUZZ_SETTINGS
    @given(case=st.one_of(strategies).map(cap_long_poll))
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT)
        seen_statuses.add(response.status_code)

    fuzz()
    assert seen_statuses, f"no request reached {label}"
    assert all(s < 500 for s in seen_statuses)

    assert inconsistencies(api.store) == []
    # A fuzzed deployment or schedule must not break the scheduler for every deployment.
    schedule_due_runs(api.store)
    assert inconsistencies(api.store) == []


def test_seeded_objects_are_reachable_through_the_fuzzed_app(api: Api) -> None:
    """The seeding the fuzzer relies on produces objects the API serves (guards the setup)."""
    ids = seed(api.store)
    get_pool = api.schema.find_operation_by_label("GET /api/work_pools/{name}")
    response = get_pool.Case(path_parameters={"name": SEED_POOL}).call()
    assert response.status_code == 200
    assert {q["name"] for q in response.json()["queues"]} >= {"default", SEED_QUEUE}
    get_run = api.schema.find_operation_by_label("GET /api/flow_runs/{run_id}")
    states = set()
    for run_id in ids["run_id"]:
        response = get_run.Case(path_parameters={"run_id": run_id}).call()
        assert response.status_code == 200
        states.add(response.json()["state"])
    assert {"SCHEDULED", "RUNNING"} <= states


# --- inputs the fuzzer reaches only rarely, pinned down ------------------------------------------

EDGE_CASES = [
    pytest.param(
        "POST /api/deployments/{deployment_id}/runs",
        {},
        {"scheduled_time": "0001-01-01T00:00:00+05:00"},
        id="run-scheduled-in-year-1-east-of-utc",
    ),
    pytest.param(
        "POST /api/deployments/{deployment_id}/runs",
        {},
        {"scheduled_time": "9999-12-31T23:59:59-05:00"},
        id="run-scheduled-in-year-9999-west-of-utc",
    ),
    pytest.param(
        "POST /api/deployments",
        {},
        {
            "name": "anchored",
            "flow_name": "edge",
            "entrypoint": "flows.py:greet",
            "schedules": [{"interval": 60, "anchor_date": "0001-01-01T00:00:00+05:00"}],
        },
        id="schedule-anchored-in-year-1-east-of-utc",
    ),
    pytest.param(
        "POST /api/flow_runs/{run_id}/logs",
        {},
        [{"message": "hello", "timestamp": "0001-01-01T00:00:00+05:00"}],
        id="log-line-from-year-1-east-of-utc",
    ),
    pytest.param(
        "GET /api/flow_runs/{run_id}/logs",
        {"after": 10**20},
        None,
        id="logs-after-an-id-beyond-64-bits",
    ),
    pytest.param(
        "POST /api/deployments/{deployment_id}/runs",
        {},
        {"scheduled_time": "0001-01-01T00:00:00Z"},
        id="run-scheduled-in-year-1-utc",
    ),
    pytest.param(
        "POST /api/work_pools/{name}/poll",
        {},
        {"worker_name": "w", "limit": 0, "running": ["not-a-run"] * 100},
        id="poll-with-nothing-to-claim",
    ),
]


@pytest.mark.parametrize(("label", "query", "body"), EDGE_CASES)
def test_edge_case_requests_get_an_answer_not_a_server_error(
    api: Api, label: str, query: dict[str, Any], body: Any
) -> None:
    ids = seed(api.store)
    operation = api.schema.find_operation_by_label(label)
    path_parameters = real_path_parameters(operation.path, ids)
    case = operation.Case(
        path_parameters=path_parameters[0] if path_parameters else None,
        query=query or None,
        body=body if body is not None else schemathesis.core.NOT_SET,
    )
    try:
        response = case.call(timeout=REQUEST_TIMEOUT)
    except Exception as exc:  # the app raised: a real server answers 500 Internal Server Error
        pytest.fail(f"{label} crashed the server: {type(exc).__name__}: {str(exc)[:200]}")
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert inconsistencies(api.store) == []


def test_app_errors_are_explained_to_the_user(api: Api) -> None:
    operation = api.schema.find_operation_by_label("POST /api/blocks")
    response = operation.Case(body={"name": "x", "block_type": "floppy-disk"}).call()
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"
    assert "floppy-disk" in response.json()["detail"]
    assert "json" in response.json()["detail"], "the message lists the block types to use"


def test_app_422_errors_match_the_documented_422_schema(api: Api) -> None:
    operation = api.schema.find_operation_by_label("POST /api/blocks")
    case = operation.Case(body={"name": "x", "block_type": "floppy-disk"})
    response = case.call()
    assert response.status_code == 422
    case.validate_response(response, checks=[response_schema_conformance])
