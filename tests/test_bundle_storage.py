"""Code bundles in the bucket a pool names (`bundle_storage`): Amazon S3 on moto's server and
Cloud Storage on the project's GCP emulator, through the real SDKs; runs still download them
through the server with their own token."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from push_pools.client import Client
from push_pools.deploy.entrypoints import load_flow
from push_pools.errors import InvalidInput, PushPoolsError
from tests.bundle_helpers import where_project
from tests.conftest import wait_for_state
from tests.emulators.gcp import GcpEmulator
from tests.emulators.moto_server import MotoServer, aws_test_env

pytestmark = pytest.mark.store


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def gcp_emulator() -> Iterator[GcpEmulator]:
    with GcpEmulator(stop_grace_seconds=1.0) as emulator:
        yield emulator


@pytest.fixture
def s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    import boto3

    aws_test_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)  # the server's own credentials' chain
    client = boto3.client("s3")
    yield client
    moto.reset()


def _gcs_key(emulator: GcpEmulator, tmp_path: Path, roles: tuple[str, ...]) -> tuple[str, Path]:
    project = f"proj-{uuid.uuid4().hex[:8]}"
    key = emulator.create_key_file(
        tmp_path / f"server-{len(roles)}.json", project=project, account_id="server", roles=roles
    )
    return project, key


@pytest.fixture
def gcs(gcp_emulator: GcpEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    from google.cloud import storage

    project, key = _gcs_key(gcp_emulator, tmp_path, ("roles/storage.admin",))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.setenv("PUSH_POOLS_GCP_ENDPOINT", gcp_emulator.endpoint)
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    return storage.Client(project=project, client_options={"api_endpoint": gcp_emulator.endpoint})


def _managed_pool(client: Client, name: str, storage: str) -> str:
    """A managed pool whose template declares the bucket (any pool's template may)."""
    from push_pools import bundle_storage

    client.create_work_pool({"name": name, "type": "managed"})
    template = client.get_work_pool(name)["base_job_template"]
    schema = {**bundle_storage.variable_schema(), "default": storage}
    template["variables"]["properties"][bundle_storage.VARIABLE] = schema
    client.update_work_pool(name, {"base_job_template": template})
    return name


def _deploy(client: Client, pool: str, project: Path, name: str = "stored") -> Any:
    flow = load_flow("flows.py:where", project)
    return flow.deploy(name, pool, source_dir=project, client=client, quiet=True)


def _sha(deployment: Any) -> str:
    ((_, options),) = deployment.pull_steps[0].items()
    return str(options["sha256"])


def test_an_s3_bucket_holds_the_pools_bundles_and_runs_read_them_through_the_server(
    client: Client, s3: Any, readable_dir: Path
) -> None:
    s3.create_bucket(Bucket="flow-code")
    pool = _managed_pool(client, "bucketed", "s3://flow-code/bundles/")
    project = where_project(readable_dir, "from the S3 bucket")
    deployment = _deploy(client, pool, project)
    sha = _sha(deployment)
    stored = s3.get_object(Bucket="flow-code", Key=f"bundles/{sha}.tar.gz")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == sha
    assert client.download_bundle(sha) == stored

    run = client.create_run(deployment.id, {})
    final = wait_for_state(client, run["id"], timeout=60)
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"]["marker"] == "from the S3 bucket"

    # The bytes are the bucket's only: with the object gone, the server says so.
    s3.delete_object(Bucket="flow-code", Key=f"bundles/{sha}.tar.gz")
    with pytest.raises(PushPoolsError) as gone:
        client.download_bundle(sha)
    assert f"s3://flow-code/bundles/{sha}.tar.gz" in gone.value.message
    assert "deploy the project again" in gone.value.message
    # ... and a redeploy of the same code repairs it: the server checks the object, not only
    # its row, so the bundle is uploaded again instead of "unchanged".
    assert not client.has_bundle(sha, pool)
    again = _deploy(client, pool, project)
    assert _sha(again) == sha
    assert client.download_bundle(sha) == stored
    assert client.has_bundle(sha, pool)


def test_a_bundle_moves_to_where_the_pool_deployed_to_reads_it(
    client: Client, s3: Any, readable_dir: Path
) -> None:
    """The same code deployed to a pool with a bucket, then to one without: the row follows
    the latest upload, so deleting the first pool's bucket breaks neither deployment."""
    s3.create_bucket(Bucket="first-code")
    bucketed = _managed_pool(client, "first", "s3://first-code/b")
    client.create_work_pool({"name": "plain", "type": "managed"})
    project = where_project(readable_dir, "moved")
    sha = _sha(_deploy(client, bucketed, project, name="one"))
    assert client.has_bundle(sha, bucketed) and not client.has_bundle(sha, "plain")
    second = _deploy(client, "plain", project, name="two")
    assert _sha(second) == sha and client.has_bundle(sha, "plain")
    s3.delete_object(Bucket="first-code", Key=f"b/{sha}.tar.gz")
    s3.delete_bucket(Bucket="first-code")
    run = client.create_run(second.id, {})
    final = wait_for_state(client, run["id"], timeout=60)
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"]["marker"] == "moved"


def test_a_gcs_bucket_holds_the_pools_bundles(client: Client, gcs: Any, readable_dir: Path) -> None:
    gcs.create_bucket("flow-code-gcs")
    pool = _managed_pool(client, "gcs-bucketed", "gs://flow-code-gcs/code")
    project = where_project(readable_dir, "from the GCS bucket")
    deployment = _deploy(client, pool, project)
    sha = _sha(deployment)
    blob = gcs.bucket("flow-code-gcs").blob(f"code/{sha}.tar.gz")
    stored = blob.download_as_bytes()
    assert hashlib.sha256(stored).hexdigest() == sha
    assert client.download_bundle(sha) == stored
    run = client.create_run(deployment.id, {})
    final = wait_for_state(client, run["id"], timeout=60)
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"]["marker"] == "from the GCS bucket"


def test_a_pruned_bundle_leaves_its_bucket_too(
    client: Client, server: Any, s3: Any, gcs: Any, readable_dir: Path
) -> None:
    from datetime import timedelta

    from push_pools.store.pruning import BUNDLE_GRACE, prune
    from push_pools.store.tables import utcnow

    s3.create_bucket(Bucket="pruned-code")
    gcs.create_bucket("pruned-code-gcs")
    later = utcnow() + BUNDLE_GRACE + timedelta(minutes=1)
    for pool, url in (("s3-pool", "s3://pruned-code/b"), ("gs-pool", "gs://pruned-code-gcs/b")):
        _managed_pool(client, pool, url)
        (readable_dir / pool).mkdir()
        project = where_project(readable_dir / pool, f"{pool} v1")
        old = _sha(_deploy(client, pool, project, name=pool))
        (project / "marker.txt").write_text(f"{pool} v2")
        new = _sha(_deploy(client, pool, project, name=pool))
        assert prune(server.store, later).bundles == 1
        assert not client.has_bundle(old) and client.has_bundle(new)
        if pool == "s3-pool":
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket="pruned-code")["Contents"]]
        else:
            keys = [blob.name for blob in gcs.list_blobs("pruned-code-gcs")]
        assert keys == [f"b/{new}.tar.gz"]


def test_pruning_gives_up_on_a_bucket_after_its_first_failure(
    client: Client, server: Any, s3: Any, readable_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Pruning runs in the scheduler's loop: a bucket that fails costs one call a pass, not one
    per object, and the rows go all the same."""
    import logging
    from datetime import timedelta

    from push_pools.store.pruning import BUNDLE_GRACE, prune
    from push_pools.store.tables import utcnow

    s3.create_bucket(Bucket="gone-code")
    pool = _managed_pool(client, "gone", "s3://gone-code/b")
    project = where_project(readable_dir, "v1")
    shas = []
    for version in ("v1", "v2", "v3"):
        (project / "marker.txt").write_text(version)
        shas.append(_sha(_deploy(client, pool, project, name="gone")))
    for listed in s3.list_objects_v2(Bucket="gone-code")["Contents"]:
        s3.delete_object(Bucket="gone-code", Key=listed["Key"])
    s3.delete_bucket(Bucket="gone-code")
    caplog.set_level(logging.WARNING, logger="push_pools.store.pruning")
    later = utcnow() + BUNDLE_GRACE + timedelta(minutes=1)
    assert prune(server.store, later).bundles == 2  # v1 and v2: v3 is the deployment's
    failures = [r for r in caplog.records if "could not delete the pruned" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert not client.has_bundle(shas[0]) and not client.has_bundle(shas[1])


# --- bad input ----------------------------------------------------------------------------------


def test_a_bucket_url_of_an_unknown_scheme_is_refused_with_the_pool(client: Client) -> None:
    with pytest.raises(InvalidInput) as exc:
        _managed_pool(client, "odd", "ftp://somewhere/bundles")
    assert "'ftp://somewhere/bundles' is not a bucket URL" in exc.value.message
    assert "s3://bucket/prefix" in exc.value.message and "gs://bucket/prefix" in exc.value.message
    template = client.get_work_pool("odd")["base_job_template"]
    assert "bundle_storage" not in template["variables"]["properties"]  # nothing was changed


@pytest.mark.parametrize(
    ("pool_type", "url", "wanted"),
    [("ecs:push", "gs://flow-code/b", "s3://"), ("cloud-run:push", "s3://flow-code/b", "gs://")],
)
def test_a_bucket_of_another_cloud_than_the_pools_is_refused(
    client: Client, pool_type: str, url: str, wanted: str
) -> None:
    """The server reaches a pool's bucket as the pool: an ECS pool's AWS block cannot read a
    Cloud Storage bucket, nor a Cloud Run pool's key an S3 one."""
    client.create_work_pool({"name": "cloudy", "type": pool_type})
    template = client.get_work_pool("cloudy")["base_job_template"]
    template["variables"]["properties"]["bundle_storage"]["default"] = url
    with pytest.raises(InvalidInput) as exc:
        client.update_work_pool("cloudy", {"base_job_template": template})
    assert f"a {pool_type} pool's credentials" in exc.value.message
    assert f"use {wanted}bucket/prefix" in exc.value.message
    stored = client.get_work_pool("cloudy")["base_job_template"]["variables"]["properties"]
    assert stored["bundle_storage"]["default"] == ""  # nothing was changed


def test_an_s3_bucket_the_server_cannot_write_fails_the_deploy_and_stores_nothing(
    client: Client, s3: Any, readable_dir: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = _managed_pool(client, "missing-bucket", "s3://no-such-bucket/bundles")
    project = where_project(readable_dir, "never stored")
    monkeypatch.chdir(project)
    result = cli("deploy", "flows.py:where", "-n", "nowhere", "-p", pool, "--no-prompt")
    assert result.exit_code != 0
    message = " ".join(result.stderr.split())
    assert "cannot write the code bundle to s3://no-such-bucket/bundles/" in message
    assert "NoSuchBucket" in message
    assert "Traceback" not in result.stdout + result.stderr
    assert client.list_deployments() == []
    from push_pools.deploy.bundle import pack

    assert not client.has_bundle(pack(project).sha256)


def test_a_gcs_bucket_the_server_may_not_write_fails_the_deploy_and_stores_nothing(
    client: Client,
    gcs: Any,
    gcp_emulator: GcpEmulator,
    readable_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gcs.create_bucket("locked-code")
    _, reader = _gcs_key(gcp_emulator, tmp_path, ("roles/storage.objectViewer",))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(reader))  # the server's identity
    pool = _managed_pool(client, "locked", "gs://locked-code/bundles")
    project = where_project(readable_dir, "never stored")
    with pytest.raises(InvalidInput) as exc:
        _deploy(client, pool, project)
    assert "cannot write the code bundle to gs://locked-code/bundles/" in exc.value.message
    assert "403" in exc.value.message
    assert client.list_deployments() == []
    assert list(gcs.list_blobs("locked-code")) == []
