"""The GCP provisioner against the GCP emulator: real Google clients (REST, and gRPC for IAM)
over the wire, credentials through google-auth's real path (a service-account key file whose
token_uri is the emulator's), nothing patched.

Each test gets a fresh emulator with one project, `proj-a`, whose owner account is the caller,
and an in-memory credentials-block store standing in for the CLI's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioners.gcp.adapter import GcpProvisioner
from provisioners.gcp.base import StepIds
from provisioners.gcp.build import build_gcp_plan, gcp_steps
from provisioners.gcp.clients import GcpClients, default_credentials
from provisioners.gcp.config import GcpProvisionConfig
from provisioners.gcp.storage import bucket_name
from provisioners.plan import MemoryRecorder, Plan, ProvisioningError, StepStatus
from push_pools.errors import InvalidInput
from tests.emulators.gcp import GcpEmulator
from tests.gcp_helpers import PROJECT, account_email, gcp_test_env

POOL = "pool-a"
REGION = "europe-west1"
RUNTIME = account_email(POOL, "run")
CONTROL = account_email(POOL, "cp")
REPOSITORY = f"projects/{PROJECT}/locations/{REGION}/repositories/push-pools-{POOL}"
BLOCK = f"{POOL}-gcp-credentials"
BUCKET = bucket_name(POOL, PROJECT)
ALL_STEPS = [s.id for s in gcp_steps(GcpProvisionConfig(POOL, PROJECT, REGION))[0]]
# Steps whose create changes something (the project step only reads).
CREATING_STEPS = [s for s in ALL_STEPS if s != StepIds.PROJECT]


class Blocks:
    """The CLI's credentials-block store, in memory."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}
        self.saves = 0

    def save(self, name: str, data: dict[str, Any]) -> None:
        self.saves += 1
        self.saved[name] = data

    def exists(self, name: str) -> bool:
        return name in self.saved


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[GcpEmulator]:
    with GcpEmulator() as running:
        gcp_test_env(monkeypatch, running, tmp_path)
        # As in a new project: Cloud Run, Artifact Registry and IAM answer only once enabled.
        running.require_enabled_services = True
        yield running
        assert running.errors == []


class Gcp:
    """One test's view of the project: plans built the way the CLI builds them."""

    def __init__(self, emulator: GcpEmulator) -> None:
        self.emulator = emulator
        self.blocks = Blocks()
        self.recorder = MemoryRecorder()

    def provisioner(self, **values: Any) -> GcpProvisioner:
        values.setdefault("region", REGION)
        return GcpProvisioner(POOL, values, records=self.recorder.load())

    def plan(self, **values: Any) -> Plan:
        plan: Plan = self.provisioner(**values).plan(self.recorder, credentials=self.blocks)
        return plan

    def failing_plan(self, step: str) -> Plan:
        config = GcpProvisionConfig(POOL, PROJECT, REGION, fail_at_step=step)
        credentials, _ = default_credentials()
        clients = GcpClients(credentials, self.emulator.endpoint)
        return build_gcp_plan(config, self.recorder, clients=clients, credentials_store=self.blocks)

    def ours_left(self) -> list[str]:
        """What of this pool exists in the project (accounts, repository, bindings, keys)."""
        left = [e for e in self.emulator.service_accounts if e in (RUNTIME, CONTROL)]
        left += [r for r in self.emulator.repositories if r == REPOSITORY]
        for binding in self.emulator.project_policy(PROJECT).to_json().get("bindings", []):
            left += [f"{binding['role']}: {m}" for m in binding["members"] if CONTROL in m]
        bucket = self.emulator.buckets.get(BUCKET)
        if bucket is not None:
            left.append(BUCKET)
            for binding in bucket.policy.to_json().get("bindings", []):
                left += [
                    f"bucket {binding['role']}: {m}" for m in binding["members"] if CONTROL in m
                ]
        return left

    def control_keys(self) -> list[str]:
        account = self.emulator.service_accounts.get(CONTROL)
        return [] if account is None else [k.key_id for k in account.user_keys()]


@pytest.fixture
def gcp(emulator: GcpEmulator) -> Gcp:
    return Gcp(emulator)


def project_bindings(emulator: GcpEmulator) -> dict[str, list[str]]:
    policy = emulator.project_policy(PROJECT).to_json()
    return {b["role"]: b["members"] for b in policy.get("bindings", [])}


def run_v2_client(emulator: GcpEmulator, info: dict[str, Any]) -> Any:
    """A Cloud Run client signed in with the key the provisioner stored."""
    from google.cloud import run_v2
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    return run_v2.JobsClient(
        credentials=credentials,
        transport="rest",
        client_options={"api_endpoint": emulator.endpoint},
    )


def job(service_account: str) -> Any:
    from google.cloud import run_v2

    container = run_v2.Container(image="python:3.12-slim", command=["python", "-c", "print(1)"])
    template = run_v2.TaskTemplate(containers=[container], service_account=service_account)
    return run_v2.Job(template=run_v2.ExecutionTemplate(template=template))


def test_provision_from_an_empty_project_wires_a_key_that_runs_jobs_as_the_runtime_account(
    gcp: Gcp, emulator: GcpEmulator
) -> None:
    from google.api_core.exceptions import Forbidden

    emulator.grant(PROJECT, "roles/viewer", "user:alice@example.com")
    provisioner = gcp.provisioner()
    who = provisioner.preflight()
    assert (who.account, who.region, who.scope) == (PROJECT, REGION, "project")
    assert who.caller == f"owner@{PROJECT}.iam.gserviceaccount.com"

    plan = provisioner.plan(gcp.recorder, credentials=gcp.blocks)
    preview = plan.preview()
    assert [s.step_id for s in preview] == ALL_STEPS
    assert {s.status for s in preview[1:]} == {StepStatus.CREATE}
    assert emulator.calls.mutating() == []  # a preview changes nothing

    outputs = plan.apply()
    assert {"run.googleapis.com", "artifactregistry.googleapis.com", "iam.googleapis.com"} <= (
        emulator.enabled_services(PROJECT)
    )
    repository = emulator.repositories[REPOSITORY]
    assert dict(repository.labels) == {
        "push-pools-pool": POOL,
        "push-pools-managed-by": "push-pools",
    }
    assert provisioner.template_defaults(outputs) == {
        "region": REGION,
        "project": PROJECT,
        "service_account_name": RUNTIME,
        "image_repository": f"{REGION}-docker.pkg.dev/{PROJECT}/push-pools-{POOL}",
        "bundle_storage": f"gs://{BUCKET}/bundles",
        "credentials": BLOCK,
    }
    # Every other binding kept; the control plane runs jobs in the project...
    bindings = project_bindings(emulator)
    assert bindings["roles/viewer"] == ["user:alice@example.com"]
    assert bindings["roles/run.developer"] == [f"serviceAccount:{CONTROL}"]
    # ...and may act as the runtime account only: not through the project's policy.
    assert "roles/iam.serviceAccountUser" not in bindings
    runtime_policy = emulator.service_accounts[RUNTIME].policy.to_json()["bindings"]
    assert runtime_policy == [
        {"role": "roles/iam.serviceAccountUser", "members": [f"serviceAccount:{CONTROL}"]}
    ]

    # The stored key is the control plane's, and it works: a job as the runtime account is
    # allowed, a job as any other account is not.
    info = gcp.blocks.saved[BLOCK]["service_account_info"]
    assert gcp.blocks.saved[BLOCK]["project"] == PROJECT
    assert info["client_email"] == CONTROL
    assert len(gcp.control_keys()) == 1
    jobs = run_v2_client(emulator, info)
    parent = f"projects/{PROJECT}/locations/{REGION}"
    jobs.create_job(parent=parent, job=job(RUNTIME), job_id="probe").result(timeout=10)
    with pytest.raises(Forbidden, match="actAs"):
        jobs.create_job(
            parent=parent, job=job(f"owner@{PROJECT}.iam.gserviceaccount.com"), job_id="probe-2"
        ).result(timeout=10)
    # The records hold no secret (the Plan refuses them) and name the block.
    records = {r.step: r for r in gcp.recorder.load()}
    assert records[StepIds.KEY].data["credentials_block"] == BLOCK
    assert all(r.created for s, r in records.items() if s != StepIds.SERVICES)


def test_a_second_run_changes_nothing_and_makes_no_second_key(
    gcp: Gcp, emulator: GcpEmulator
) -> None:
    gcp.plan().apply()
    keys = gcp.control_keys()
    emulator.calls.clear()

    plan = gcp.plan()  # built from the records, as `provision-infra` of the pool would
    assert {s.status for s in plan.preview()} == {StepStatus.EXISTS}
    plan.apply()
    assert emulator.calls.mutating() == []
    assert gcp.control_keys() == keys
    assert gcp.blocks.saves == 1


def test_repository_and_runtime_account_made_by_someone_else_are_adopted_and_kept(
    gcp: Gcp, emulator: GcpEmulator
) -> None:
    emulator.enable_services(PROJECT, "artifactregistry.googleapis.com", "iam.googleapis.com")
    emulator.add_repository(PROJECT, REGION, f"push-pools-{POOL}", labels={"team": "data"})
    emulator.add_service_account(PROJECT, f"pp-{POOL}-run", display_name="theirs")
    plan = gcp.plan()
    statuses = {s.step_id: (s.status, s.detail) for s in plan.preview()}
    assert statuses[StepIds.REPOSITORY][0] == StepStatus.EXISTS
    assert "adopted" in statuses[StepIds.REPOSITORY][1]
    assert statuses[StepIds.RUNTIME_ACCOUNT][0] == StepStatus.EXISTS

    plan.apply()
    records = {r.step: r for r in gcp.recorder.load()}
    assert not records[StepIds.REPOSITORY].created
    assert not records[StepIds.RUNTIME_ACCOUNT].created
    assert dict(emulator.repositories[REPOSITORY].labels) == {"team": "data"}  # untouched

    gcp.plan().teardown()
    assert REPOSITORY in emulator.repositories
    assert RUNTIME in emulator.service_accounts
    # Our grant on their account is gone with the rest of what we made.
    assert emulator.service_accounts[RUNTIME].policy.to_json().get("bindings", []) == []
    assert sorted(gcp.ours_left()) == sorted([RUNTIME, REPOSITORY])
    assert gcp.recorder.load() == []


def test_another_pools_repository_is_refused(gcp: Gcp, emulator: GcpEmulator) -> None:
    emulator.enable_services(PROJECT, "artifactregistry.googleapis.com", "iam.googleapis.com")
    emulator.add_repository(
        PROJECT,
        REGION,
        f"push-pools-{POOL}",
        labels={"push-pools-pool": "other", "push-pools-managed-by": "push-pools"},
    )
    with pytest.raises(ProvisioningError, match="belongs to push-pools pool 'other'"):
        gcp.plan().apply()


@pytest.mark.parametrize("step", CREATING_STEPS)
def test_a_failure_at_each_step_resumes_and_teardown_leaves_nothing(
    gcp: Gcp, emulator: GcpEmulator, step: str
) -> None:
    with pytest.raises(ProvisioningError) as failed:
        gcp.failing_plan(step).apply()
    assert failed.value.step_id == step
    assert step not in {r.step for r in gcp.recorder.load()}

    gcp.plan().apply()  # resumes: adopts what the failed run made, as ours
    assert len(gcp.control_keys()) == 1
    assert gcp.blocks.saves == 1
    assert sorted(gcp.ours_left()) == sorted(
        [
            RUNTIME,
            CONTROL,
            REPOSITORY,
            BUCKET,
            f"roles/run.developer: serviceAccount:{CONTROL}",
            f"bucket roles/storage.objectAdmin: serviceAccount:{CONTROL}",
        ]
    )

    gcp.plan().teardown()
    assert gcp.ours_left() == []
    assert gcp.recorder.load() == []


def test_teardown_right_after_a_crash_sweeps_what_has_no_record(
    gcp: Gcp, emulator: GcpEmulator
) -> None:
    with pytest.raises(ProvisioningError):
        gcp.failing_plan(StepIds.PROJECT_ROLE).apply()
    assert f"roles/run.developer: serviceAccount:{CONTROL}" in gcp.ours_left()
    gcp.plan().teardown()
    assert gcp.ours_left() == []


def test_etag_conflicts_are_read_again_and_keep_other_bindings(
    gcp: Gcp, emulator: GcpEmulator
) -> None:
    emulator.grant(PROJECT, "roles/viewer", "user:alice@example.com")
    emulator.faults.add(rf"POST /v3/projects/{PROJECT}:setIamPolicy", code="ABORTED", times=2)
    gcp.plan().apply()
    writes = [c for c in emulator.calls if c.path.endswith(":setIamPolicy")]
    assert [c.code for c in writes] == ["ABORTED", "ABORTED", "OK"]
    bindings = project_bindings(emulator)
    assert bindings["roles/viewer"] == ["user:alice@example.com"]
    assert bindings["roles/run.developer"] == [f"serviceAccount:{CONTROL}"]


def test_key_creation_forbidden_says_so_and_no_key_works(gcp: Gcp, emulator: GcpEmulator) -> None:
    emulator.forbid_key_creation(PROJECT)
    with pytest.raises(ProvisioningError) as failed:
        gcp.plan().apply()
    message = failed.value.message
    assert "forbids service-account keys" in message
    assert "iam.disableServiceAccountKeyCreation" in message and "--no-key" in message
    assert gcp.blocks.saved == {}

    provisioner = gcp.provisioner(key=False)
    assert "--no-key" in provisioner.preflight().note
    outputs = provisioner.plan(gcp.recorder, credentials=gcp.blocks).apply()
    defaults = provisioner.template_defaults(outputs)
    assert "credentials" not in defaults and defaults["project"] == PROJECT
    assert gcp.blocks.saved == {} and gcp.control_keys() == []
    assert StepIds.KEY not in {r.step for r in gcp.recorder.load()}


def test_bad_input_is_one_clear_line(
    gcp: Gcp, emulator: GcpEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidInput, match="Cloud Run does not run in region 'mars-west1'"):
        gcp.provisioner(region="mars-west1")
    with pytest.raises(InvalidInput) as unknown:
        gcp.provisioner(project="no-such-project").preflight()
    assert unknown.value.message == (
        f"Google Cloud project 'no-such-project' does not exist or owner@{PROJECT}.iam."
        "gserviceaccount.com may not see it (resourcemanager.projects.get): check --project"
    )
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    with pytest.raises(InvalidInput) as none:
        gcp.provisioner()
    assert none.value.message == (
        "no Google Cloud credentials found: set GOOGLE_APPLICATION_CREDENTIALS to a "
        "service-account key file, or run `gcloud auth application-default login`"
    )


def test_a_pool_stays_where_it_was_provisioned(gcp: Gcp, emulator: GcpEmulator) -> None:
    gcp.plan().apply()
    # No --region now: the records say europe-west1, whatever the environment's default.
    assert gcp.provisioner(region=None).config.region == REGION
    with pytest.raises(
        ProvisioningError, match="provisioned in project proj-a, region europe-west1"
    ):
        gcp.plan(region="us-east1").preview()


# --- the code-bundle bucket -----------------------------------------------------------------


def storage_client(emulator: GcpEmulator, info: dict[str, Any]) -> Any:
    """A Cloud Storage client signed in with the key the provisioner stored."""
    from google.cloud import storage
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    return storage.Client(
        project=PROJECT,
        credentials=credentials,
        client_options={"api_endpoint": emulator.endpoint},
    )


def test_the_bundle_bucket_is_private_and_the_only_bucket_the_control_plane_may_use(
    gcp: Gcp, emulator: GcpEmulator
) -> None:
    from google.api_core.exceptions import Forbidden

    emulator.add_bucket(PROJECT, "someone-elses-data")
    planned = {s.step_id: s for s in gcp.plan().preview()}
    assert planned[StepIds.BUCKET].status == StepStatus.CREATE
    assert BUCKET in planned[StepIds.BUCKET].detail  # the dry run names the bucket
    gcp.plan().apply()

    assert len(BUCKET) <= 63 and BUCKET.startswith(f"pp-{POOL}-bundles-")
    bucket = emulator.buckets[BUCKET]
    assert bucket.labels == {"push-pools-pool": POOL, "push-pools-managed-by": "push-pools"}
    assert bucket.location == REGION.upper()
    assert bucket.uniform_access is True
    assert bucket.public_access_prevention == "enforced"
    # The grant is on this bucket's policy, which keeps its other bindings; not on the project.
    policy = {b["role"]: b["members"] for b in bucket.policy.to_json()["bindings"]}
    assert policy["roles/storage.objectAdmin"] == [f"serviceAccount:{CONTROL}"]
    assert sorted(policy["roles/storage.legacyBucketOwner"]) == [
        f"projectEditor:{PROJECT}",
        f"projectOwner:{PROJECT}",
    ]
    assert not any(role.startswith("roles/storage") for role in project_bindings(emulator))

    # The stored key writes, reads and deletes bundles there, and reaches no other bucket.
    client = storage_client(emulator, gcp.blocks.saved[BLOCK]["service_account_info"])
    blob = client.bucket(BUCKET).blob("bundles/abc.tar.gz")
    blob.upload_from_string(b"bundle", content_type="application/gzip")
    assert client.bucket(BUCKET).blob("bundles/abc.tar.gz").download_as_bytes() == b"bundle"
    with pytest.raises(Forbidden):
        client.bucket("someone-elses-data").blob("x").upload_from_string(b"x")

    # Teardown deletes the bucket with what it holds; the other bucket stays.
    gcp.plan().teardown()
    assert gcp.ours_left() == []
    assert list(emulator.buckets) == ["someone-elses-data"]


def test_bucket_drift_is_converged(gcp: Gcp, emulator: GcpEmulator) -> None:
    gcp.plan().apply()
    emulator.buckets[BUCKET].uniform_access = False
    emulator.buckets[BUCKET].public_access_prevention = "inherited"
    plan = gcp.plan()
    updates = {s.step_id: s.detail for s in plan.preview() if s.status == StepStatus.UPDATE}
    assert list(updates) == [StepIds.BUCKET]
    assert "public access prevention" in updates[StepIds.BUCKET]
    emulator.calls.clear()
    plan.apply()
    assert [(c.method, c.path) for c in emulator.calls.mutating()] == [
        ("PATCH", f"/storage/v1/b/{BUCKET}")
    ]
    assert emulator.buckets[BUCKET].uniform_access is True
    assert emulator.buckets[BUCKET].public_access_prevention == "enforced"


def test_a_foreign_bucket_of_our_name_is_adopted_and_kept(gcp: Gcp, emulator: GcpEmulator) -> None:
    emulator.add_bucket(PROJECT, BUCKET)
    emulator.buckets[BUCKET].labels["team"] = "data"
    plan = gcp.plan()
    planned = {s.step_id: s for s in plan.preview()}
    assert planned[StepIds.BUCKET].status == StepStatus.EXISTS
    assert "adopted" in planned[StepIds.BUCKET].detail
    outputs = plan.apply()
    assert outputs[StepIds.BUCKET].created is False
    assert emulator.buckets[BUCKET].uniform_access is False  # used as is

    gcp.plan().teardown()
    assert BUCKET in emulator.buckets
    assert emulator.buckets[BUCKET].labels == {"team": "data"}
    # Our grant on their bucket went with the rest of what we made.
    assert gcp.ours_left() == [BUCKET]


def test_a_bucket_name_taken_in_another_project_is_a_clear_error(
    gcp: Gcp, emulator: GcpEmulator
) -> None:
    emulator.add_bucket("proj-elsewhere", BUCKET)
    with pytest.raises(ProvisioningError) as failed:
        gcp.plan().apply()
    assert failed.value.step_id == StepIds.BUCKET
    assert f"bucket {BUCKET} exists in a project these credentials cannot see" in (
        failed.value.message
    )


def test_a_stale_etag_on_the_bucket_policy_is_read_again(gcp: Gcp, emulator: GcpEmulator) -> None:
    emulator.faults.add(
        rf"PUT /storage/v1/b/{BUCKET}/iam", status=412, code="FAILED_PRECONDITION", times=1
    )
    gcp.plan().apply()
    writes = [
        c for c in emulator.calls if c.path == f"/storage/v1/b/{BUCKET}/iam" and c.method == "PUT"
    ]
    assert [c.code for c in writes] == ["FAILED_PRECONDITION", "OK"]
    policy = {
        b["role"]: b["members"] for b in emulator.buckets[BUCKET].policy.to_json()["bindings"]
    }
    assert policy["roles/storage.objectAdmin"] == [f"serviceAccount:{CONTROL}"]
