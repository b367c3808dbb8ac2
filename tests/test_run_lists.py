"""Listing runs: filters by state, deployment and pool, newest scheduled first, within a limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from push_pools.client import Client
from push_pools.errors import NotFound
from push_pools.models import DeploymentCreate, WorkPoolCreate
from push_pools.states import StateType
from push_pools.store import deployments as deployment_store
from push_pools.store import pools as pool_store
from push_pools.store import runs as run_store
from push_pools.store.db import Store
from push_pools.store.tables import Deployment

pytestmark = pytest.mark.store

T0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.migrate()
    yield s
    s.dispose()


def seed(store: Store) -> dict[str, list[tuple[str, str, str]]]:
    """Two pools with a deployment each; runs an hour apart in rotating states.

    Returns, per pool, (run id, state, scheduled time) newest first."""
    states = [StateType.COMPLETED, StateType.FAILED, StateType.SCHEDULED]
    made: dict[str, list[tuple[str, str, str]]] = {"a": [], "b": []}
    with store.session() as session:
        for pool in made:
            pool_store.create_pool(session, WorkPoolCreate(name=pool, type="process"))
            deployment_store.upsert_deployment(
                session,
                DeploymentCreate(
                    name=f"in-{pool}", flow_name="f", entrypoint="f.py:f", work_pool_name=pool
                ),
            )
        for i in range(12):
            pool = "ab"[i % 2]
            deployment = deployment_store.get_deployment_by_name(session, "f", f"in-{pool}")
            run = deployment_store.insert_run(
                session,
                deployment,
                parameters={},
                job_variables={},
                scheduled_time=T0 + timedelta(hours=i),
                tags=[],
            )
            state = states[i % 3]
            if state != StateType.SCHEDULED:
                run_store.record_state(session, run, StateType.PENDING)
                run_store.record_state(session, run, state)
            made[pool].insert(0, (run.id, state.value, run.scheduled_time.isoformat()))
    return made


def test_runs_of_several_states_come_newest_first_across_states(store: Store) -> None:
    made = seed(store)
    every_run = sorted(made["a"] + made["b"], key=lambda r: r[2], reverse=True)
    wanted = [r for r in every_run if r[1] in ("COMPLETED", "FAILED")]
    with store.read_session() as session:
        listed = run_store.list_runs(
            session, states=[StateType.FAILED, StateType.COMPLETED], limit=5
        )
        assert [r.id for r in listed] == [r[0] for r in wanted[:5]]
        one = run_store.list_runs(session, states=[StateType.SCHEDULED], limit=50)
        assert [r.id for r in one] == [r[0] for r in every_run if r[1] == "SCHEDULED"]


def test_the_api_and_cli_filter_runs_by_pool(
    store: Store, server_factory: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    made = seed(store)
    server = server_factory()
    with Client(server.api_url) as client:
        in_a = client.list_runs(work_pool="a")
        assert [r["id"] for r in in_a] == [r[0] for r in made["a"]]
        assert {r["work_pool_name"] for r in in_a} == {"a"}
        failed_in_b = client.list_runs(work_pool="b", state=["FAILED"])
        assert [r["id"] for r in failed_in_b] == [r[0] for r in made["b"] if r[1] == "FAILED"]
        with pytest.raises(NotFound, match="work pool 'nope' not found"):
            client.list_runs(work_pool="nope")

    result = cli("flow-run", "ls", "--pool", "a", "--limit", "2", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in result.json()] == [r[0] for r in made["a"][:2]]


def test_a_deployment_s_runs_ignore_other_deployments(store: Store) -> None:
    made = seed(store)
    with store.read_session() as session:
        deployment = deployment_store.get_deployment_by_name(session, "f", "in-a")
        assert isinstance(deployment, Deployment)
        listed = run_store.list_runs(session, deployment_id=deployment.id, limit=3)
        assert [r.id for r in listed] == [r[0] for r in made["a"][:3]]


def test_every_run_command_takes_an_id_a_name_or_a_unique_id_prefix(
    store: Store, server_factory: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    made = seed(store)
    with store.session() as session:
        deployment = deployment_store.get_deployment_by_name(session, "f", "in-a")
        twins = [
            deployment_store.insert_run(
                session, deployment, parameters={}, job_variables={}, tags=[],
                scheduled_time=T0, name="same-name",
            ).id
            for _ in range(2)
        ]  # fmt: skip
        named = deployment_store.insert_run(
            session, deployment, parameters={}, job_variables={}, tags=[],
            scheduled_time=T0, name="hello-310190",
        )  # fmt: skip
        run_id, run_name = named.id, named.name
    server_factory()

    by_name = cli("flow-run", "inspect", run_name, "--json")
    assert by_name.exit_code == 0, by_name.stderr
    assert by_name.json()["id"] == run_id
    by_prefix = cli("flow-run", "inspect", run_id[:8], "--json")
    assert by_prefix.json()["id"] == run_id
    assert cli("flow-run", "logs", run_name).exit_code == 0

    ambiguous = cli("flow-run", "inspect", "same-name")
    assert ambiguous.exit_code == 1
    assert "fits several flow runs" in ambiguous.stderr
    assert all(twin in ambiguous.stderr for twin in twins)
    # Nothing is cancelled on a guess.
    assert cli("flow-run", "cancel", "same-name").exit_code == 1
    assert {cli("flow-run", "inspect", t, "--json").json()["state"] for t in twins} == {"SCHEDULED"}

    cancelled = cli("flow-run", "cancel", run_name, "--json")
    assert cancelled.exit_code == 0, cancelled.stderr
    assert cancelled.json()["id"] == run_id
    deleted = cli("flow-run", "delete", run_name)
    assert deleted.exit_code == 0, deleted.stderr
    assert run_id in deleted.stdout
    missing = cli("flow-run", "inspect", run_name)
    assert missing.exit_code == 1 and "not found" in missing.stderr
    assert made["a"][0][0] in cli("flow-run", "ls", "--json").stdout  # the others are untouched
