"""The store forgets old write receipts and pool tombstones nothing needs (store/pruning.py).

Time is injected: each pass is given its `now`, so no verdict waits on the wall clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from conftest import deploy
from sqlalchemy import func, select, update

from push_pools.client import Client
from push_pools.store.pruning import RECEIPT_WINDOW, TOMBSTONE_GRACE, prune
from push_pools.store.tables import FlowRun, WorkPool, WriteReceipt, utcnow

pytestmark = pytest.mark.store


def receipts(server) -> int:
    with server.store.read_session() as session:
        return session.scalar(select(func.count()).select_from(WriteReceipt)) or 0


def pools_in_store(server) -> list[str]:
    with server.store.read_session() as session:
        return sorted(session.scalars(select(WorkPool.name)))


def after_grace():
    return utcnow() + TOMBSTONE_GRACE + timedelta(minutes=1)


def listed_pools(cli) -> list[str]:
    return [p["name"] for p in cli("work-pool", "ls", "--json").json()]


@pytest.fixture
def claimed_run(client, flow_dir) -> dict[str, Any]:
    """A run of a process pool, claimed by a worker and Running."""
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "greet")
    run = client.create_run(deployment["id"], {})
    client.poll("pool", {"worker_name": "w"}, timeout=10)
    client.set_state(run["id"], {"type": "RUNNING"})
    return run


def test_a_retried_write_is_recognised_within_the_window_and_its_receipt_goes_after(
    client, server, claimed_run
) -> None:
    run_id = claimed_run["id"]
    lines = [{"message": "once"}]
    client.add_logs(run_id, lines, key="batch-1")
    written = utcnow()

    # Just inside the window: the receipt stays, and a retry is answered from it.
    assert prune(server.store, written + RECEIPT_WINDOW - timedelta(minutes=1)).receipts == 0
    assert client.add_logs(run_id, lines, key="batch-1") == {"count": 1, "dropped": 0}
    assert [e["message"] for e in client.get_logs(run_id)] == ["once"]
    before = receipts(server)
    assert before >= 1  # the log batch's, and those of the worker's state changes

    # Past the window (from the newest receipt's time): every receipt is gone.
    later = utcnow() + RECEIPT_WINDOW + timedelta(minutes=1)
    assert prune(server.store, later).receipts == before
    assert receipts(server) == 0
    # The run itself and its logs are untouched.
    assert client.get_run(run_id)["state"] == "RUNNING"
    assert [e["message"] for e in client.get_logs(run_id)] == ["once"]


def test_a_pass_deletes_a_bounded_number_of_receipts(client, server, claimed_run, monkeypatch):
    from push_pools.store import pruning

    for i in range(5):
        client.add_logs(claimed_run["id"], [{"message": f"line {i}"}], key=f"batch-{i}")
    total = receipts(server)
    monkeypatch.setattr(pruning, "RECEIPTS_PER_PASS", 2)
    later = utcnow() + RECEIPT_WINDOW + timedelta(minutes=1)
    assert prune(server.store, later).receipts == 2
    assert receipts(server) == total - 2


def test_a_deleted_pool_leaves_the_store_once_its_last_run_ends_and_no_deployment_names_it(
    client, server, cli, claimed_run
) -> None:
    run_id = claimed_run["id"]
    forced = cli("work-pool", "delete", "pool", "--force", "--yes", "--json")
    assert forced.exit_code == 0, forced.stderr
    assert client.get_run(run_id)["state"] == "CANCELLING"
    assert listed_pools(cli) == []

    # Its run is still in flight: the tombstone stays, so the worker can settle it.
    assert prune(server.store, after_grace()).pools == 0
    assert len(pools_in_store(server)) == 1
    client.set_state(run_id, {"type": "CANCELLED"})

    # The run ended, but its deployment still says which pool it was deployed to.
    assert prune(server.store, after_grace()).pools == 0
    assert client.get_deployment(claimed_run["deployment_id"])["work_pool_deleted"] is True
    assert listed_pools(cli) == []

    # Nothing needs it now; for a while its name still says it was deleted.
    cli("deployment", "delete", "greet/test", "--yes")
    assert prune(server.store).pools == 0
    inspected = cli("work-pool", "inspect", "pool")
    assert "work pool 'pool' was deleted" in inspected.stderr
    assert prune(server.store, after_grace()).pools == 1
    assert pools_in_store(server) == []
    assert listed_pools(cli) == []
    # The finished run is kept, and a pool of the same name is a new one.
    assert client.get_run(run_id)["state"] == "CANCELLED"
    assert cli("work-pool", "create", "pool", "--type", "process").exit_code == 0
    assert listed_pools(cli) == ["pool"]
    assert prune(server.store, after_grace()).pools == 0


def test_a_push_pool_tombstone_stays_until_its_runs_infrastructure_is_cleaned_up(
    server_factory, cli, flow_dir
) -> None:
    # No dispatcher: this test plays its part, writing what it would write.
    server = server_factory(run_dispatcher=False)
    with Client(server.api_url) as client:
        client.create_work_pool({"name": "push", "type": "managed"})
        deployment = deploy(client, flow_dir, "greet", pool="push")
        run = client.create_run(deployment["id"], {})
        with server.store.session() as session:
            session.execute(
                update(FlowRun)
                .where(FlowRun.id == run["id"])
                .values(state_type="RUNNING", state_name="Running", infrastructure_id="task-1")
            )
        assert cli("work-pool", "delete", "push", "--force", "--yes").exit_code == 0
        client.delete_deployment(deployment["id"], force=True)
        client.set_state(run["id"], {"type": "CANCELLED"})

        # Finished, but its sandbox is not cleaned up yet: the dispatcher needs the pool for
        # that.
        assert prune(server.store, after_grace()).pools == 0
        assert len(pools_in_store(server)) == 1
        with server.store.session() as session:
            session.execute(
                update(FlowRun).where(FlowRun.id == run["id"]).values(infrastructure_released=True)
            )
        assert prune(server.store, after_grace()).pools == 1
        assert pools_in_store(server) == []
        assert listed_pools(cli) == []


# --- code bundles -------------------------------------------------------------------------------


def _after_bundle_grace():
    from push_pools.store.pruning import BUNDLE_GRACE

    return utcnow() + BUNDLE_GRACE + timedelta(minutes=1)


def test_a_bundle_no_deployment_references_goes_after_the_grace_period(
    client: Client, server, readable_dir
) -> None:
    import hashlib

    from push_pools.deploy.entrypoints import load_flow

    client.create_work_pool({"name": "managed-pool", "type": "managed"})
    project = readable_dir / "project"
    project.mkdir()
    (project / "flows.py").write_text(
        "from push_pools import flow\n\n@flow\ndef hello() -> str:\n    return 'v1'\n"
    )
    flow = load_flow("flows.py:hello", project)
    first = flow.deploy("d", "managed-pool", source_dir=project, client=client, quiet=True)
    ((_, first_step),) = first.pull_steps[0].items()
    # Uploaded, but its deployment never written (a deploy that failed after the upload).
    stray = b"an upload whose deploy never finished"
    stray_sha = hashlib.sha256(stray).hexdigest()
    client.upload_bundle(stray_sha, stray)

    # Within the grace period nothing goes: a deploy may be writing its deployment right now.
    assert prune(server.store).bundles == 0
    assert client.has_bundle(stray_sha)
    assert prune(server.store, _after_bundle_grace()).bundles == 1
    assert not client.has_bundle(stray_sha)
    assert client.has_bundle(first_step["sha256"])  # its deployment still runs it

    (project / "flows.py").write_text(
        "from push_pools import flow\n\n@flow\ndef hello() -> str:\n    return 'v2'\n"
    )
    second = flow.deploy("d", "managed-pool", source_dir=project, client=client, quiet=True)
    ((_, second_step),) = second.pull_steps[0].items()
    assert prune(server.store, _after_bundle_grace()).bundles == 1  # the replaced code
    assert not client.has_bundle(first_step["sha256"])
    assert client.has_bundle(second_step["sha256"])
    run = client.create_run(second.id, {})
    from conftest import wait_for_state

    final = wait_for_state(client, run["id"], timeout=60)
    assert final["state"] == "COMPLETED" and final["result"] == "v2"
