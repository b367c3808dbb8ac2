"""Each flow run holds its own scoped token, never the server's API key (issue: security).

Attack: every run used to get PUSH_POOLS_API_KEY itself, so a flow's code could read any block,
change any pool and read every other run. Now the engine gets a token that reaches its own run
(read, state, logs) and its deployment, and nothing else, until shortly after the run ends.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from push_pools.client import Client
from push_pools.store import run_tokens
from push_pools.store.db import Store
from push_pools.store.tables import RunToken
from tests.conftest import deploy, wait_for_state

pytestmark = pytest.mark.store

ADMIN_KEY = "admin-key-for-tests-0123456789"

# A flow that tries, with the credentials its engine was given, what an attacker's flow would.
PROBE = """
import hashlib, os, httpx
from push_pools import flow

@flow(log_prints=True)
def probe(other_run: str = "none") -> str:
    api = os.environ["PUSH_POOLS_API_URL"]
    key = os.environ.get("PUSH_POOLS_API_KEY", "")
    auth = {"Authorization": f"Bearer {key}"}
    own = os.environ["PUSH_POOLS_FLOW_RUN_ID"]
    for label, path in [
        ("own-run", f"/flow_runs/{own}"),
        ("other-run", f"/flow_runs/{other_run}"),
        ("other-logs", f"/flow_runs/{other_run}/logs"),
        ("blocks", "/blocks"),
        ("pools", "/work_pools"),
        ("runs", "/flow_runs"),
    ]:
        print("probe", label, httpx.get(api + path, headers=auth).status_code)
    evil = {"name": "evil", "type": "process"}
    created = httpx.post(api + "/work_pools", json=evil, headers=auth)
    print("probe create-pool", created.status_code)
    print("probe is-admin-key", key == os.environ.get("ADMIN_KEY_TO_COMPARE"))
    return hashlib.sha256(key.encode()).hexdigest()
"""


@pytest.fixture
def keyed(server_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.setenv("PUSH_POOLS_API_KEY", ADMIN_KEY)
    server = server_factory(api_key=ADMIN_KEY)
    client = Client(server.api_url, api_key=ADMIN_KEY)
    client.create_block({"name": "prod", "block_type": "secret", "data": {"value": "s3cr3t-value"}})
    return client


@pytest.fixture
def probe_dir(readable_dir: Path) -> Path:
    directory = readable_dir / "probe"
    directory.mkdir()
    (directory / "flows.py").write_text(PROBE)
    return directory


def _probe_results(client: Client, run_id: str) -> dict[str, str]:
    lines = [log["message"] for log in client.get_logs(run_id)]
    found = {}
    for line in lines:
        if line.startswith("probe "):
            _, label, value = line.split(" ", 2)
            found[label] = value
    return found


def _run_probe(client: Client, probe_dir: Path, pool: str, other_run: str) -> dict[str, Any]:
    deployment = deploy(
        client,
        probe_dir,
        "probe",
        pool=pool,
        parameters={"other_run": other_run},
        job_variables={"env": {"ADMIN_KEY_TO_COMPARE": ADMIN_KEY}},
    )
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=60)
    assert final["state"] == "COMPLETED", final["state_message"]
    return final


def _assert_confined(client: Client, final: dict[str, Any]) -> None:
    probed = _probe_results(client, final["id"])
    assert probed == {
        "own-run": "200",
        "other-run": "403",
        "other-logs": "403",
        "blocks": "403",
        "pools": "403",
        "runs": "403",
        "create-pool": "403",
        "is-admin-key": "False",
    }
    assert "evil" not in {p["name"] for p in client.list_work_pools()}


def test_a_managed_run_token_reaches_only_its_own_run(keyed: Client, probe_dir: Path) -> None:
    keyed.create_work_pool({"name": "managed", "type": "managed"})
    other = _run_probe(keyed, probe_dir, "managed", "none")
    final = _run_probe(keyed, probe_dir, "managed", other["id"])
    _assert_confined(keyed, final)


def test_a_worker_gives_each_run_its_own_token(
    keyed: Client, probe_dir: Path, worker_factory: Any, server_factory: Any
) -> None:
    keyed.create_work_pool({"name": "pool", "type": "process"})
    worker_factory("pool")
    other = _run_probe(keyed, probe_dir, "pool", "none")
    final = _run_probe(keyed, probe_dir, "pool", other["id"])
    _assert_confined(keyed, final)


def test_the_token_is_stored_hashed_and_ends_with_its_run(keyed: Client, probe_dir: Path) -> None:
    keyed.create_work_pool({"name": "managed", "type": "managed"})
    final = _run_probe(keyed, probe_dir, "managed", "none")
    store = Store(os.environ["PUSH_POOLS_DATABASE_URL"])
    try:
        with store.session() as session:
            rows = session.scalars(select(RunToken).where(RunToken.flow_run_id == final["id"]))
            # Only the hash of what the engine held (the flow returned its sha256).
            assert [row.token_hash for row in rows] == [final["result"]]
            token = run_tokens.issue(session, final["id"])  # one more, known here in clear
        with store.session() as session:
            ended = datetime.fromisoformat(final["state_timestamp"])
            # Within the grace after the end (the engine's last log batch): still the run's.
            assert run_tokens.scope_of(session, token, now=ended) is not None
            after = ended + run_tokens.GRACE + timedelta(seconds=1)
            assert run_tokens.scope_of(session, token, now=after) is None
    finally:
        store.dispose()


def test_an_unknown_run_token_is_refused_even_without_an_api_key(client: Client) -> None:
    response = httpx.get(
        client.api_url + "/work_pools", headers={"Authorization": "Bearer pprun_not-a-real-one"}
    )
    assert response.status_code == 401
    assert "run token" in response.json()["detail"]
