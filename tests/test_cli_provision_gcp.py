"""`--provision-infra` for `cloud-run:push` pools through the CLI: the GCP emulator plays Google,
the embedded server plays us."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from push_pools import pool_types
from push_pools.deploy.entrypoints import load_flow
from tests.bundle_helpers import where_project
from tests.emulators.gcp import GcpEmulator
from tests.gcp_helpers import PROJECT, account_email, gcp_test_env

pytestmark = pytest.mark.store

REGION = "europe-west1"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "prefect_templates"


def _stand_in_template() -> dict[str, Any]:
    # Prefect's cloud-run-v2 template, plus the `project` variable push-pools' type adds.
    template: dict[str, Any] = json.loads((FIXTURES / "cloud-run-v2.json").read_text())
    template["variables"]["properties"]["project"] = {"title": "Project", "type": "string"}
    template["job_configuration"]["project"] = "{{ project }}"
    return template


@pytest.fixture
def cloud_run_type(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `cloud-run:push` type, or a stand-in with its variables where it is not built yet."""
    if "cloud-run:push" in pool_types.names():
        return
    monkeypatch.setattr(pool_types, "_REGISTRY", dict(pool_types._REGISTRY))
    pool_types.register(
        pool_types.PoolType(
            name="cloud-run:push",
            description="Stand-in for the Cloud Run type (tests only).",
            default_template=_stand_in_template,
            executor="push_pools.executors.base:BaseExecutor",
            is_push=True,
            credential_slots=("credentials",),
        )
    )


@pytest.fixture
def emulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cloud_run_type: None
) -> Iterator[GcpEmulator]:
    with GcpEmulator() as running:
        gcp_test_env(monkeypatch, running, tmp_path)
        running.require_enabled_services = True
        yield running
        assert running.errors == []


def create(cli: Any, *flags: str, name: str = "cr-pool") -> Any:
    return cli(
        "work-pool", "create", name, "--type", "cloud-run:push", "--provision-infra",
        "--region", REGION, *flags,
    )  # fmt: skip


def defaults(pool: dict[str, Any]) -> dict[str, Any]:
    properties = pool["base_job_template"]["variables"]["properties"]
    return {k: v.get("default") for k, v in properties.items()}


def ours_left(emulator: GcpEmulator, pool: str = "cr-pool") -> list[str]:
    left = [e for e in emulator.service_accounts if e.startswith(f"pp-{pool}-")]
    left += [r for r in emulator.repositories if r.endswith(f"/push-pools-{pool}")]
    policy = emulator.project_policy(PROJECT).to_json()
    for binding in policy.get("bindings", []):
        left += [m for m in binding["members"] if f"pp-{pool}-" in m]
    left += [b for b in emulator.buckets if b.startswith(f"pp-{pool}-bundles-")]
    return left


def test_dry_run_shows_the_plan_and_changes_nothing(server, cli, emulator) -> None:
    result = create(cli, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    plan = result.json()
    assert (plan["cloud"], plan["account"], plan["region"]) == ("gcp", PROJECT, REGION)
    assert plan["caller"] == f"owner@{PROJECT}.iam.gserviceaccount.com"
    assert [s["status"] for s in plan["steps"]][1:] == ["will be created"] * 9
    assert emulator.calls.mutating() == []
    assert cli("work-pool", "ls", "--json").json() == []

    human = create(cli, "--dry-run")
    assert human.exit_code == 0, human.stderr
    assert f"Provisioning GCP project {PROJECT} in {REGION}" in " ".join(human.stdout.split())
    assert "Dry run: nothing was changed." in human.stdout


def test_provision_create_pool_again_then_deprovision(
    server, cli, client, emulator, readable_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = create(cli, "--yes")
    assert result.exit_code == 0, result.stderr
    assert "Infrastructure successfully provisioned!" in result.stdout
    pool = client.get_work_pool("cr-pool")
    assert {k: v for k, v in defaults(pool).items() if k in ("region", "project")} == {
        "region": REGION,
        "project": PROJECT,
    }
    assert defaults(pool)["service_account_name"] == account_email("cr-pool", "run")
    assert defaults(pool)["credentials"] == "cr-pool-gcp-credentials"
    # The key is in a gcp-credentials block, its JSON shown masked.
    block = cli("block", "inspect", "cr-pool-gcp-credentials", "--json").json()
    assert block["block_type"] == "gcp-credentials"
    assert block["data"]["service_account_info"] == "********"
    assert block["data"]["project"] == PROJECT
    assert ours_left(emulator)

    # A bundle deploy lands in the bucket the provisioner made. The server writes and reads it
    # as the pool's control-plane account (its credentials block, which the provisioning
    # granted objectAdmin on that bucket): it has no Google credentials of its own here.
    bucket = defaults(pool)["bundle_storage"].removeprefix("gs://").removesuffix("/bundles")
    assert defaults(pool)["bundle_storage"] == f"gs://{bucket}/bundles"
    project = where_project(readable_dir, "in the provisioned bucket")
    owner_key = os.environ["GOOGLE_APPLICATION_CREDENTIALS"]
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    deployment = load_flow("flows.py:where", project).deploy(
        "bucketed", "cr-pool", source_dir=project, client=client, quiet=True
    )
    ((_, options),) = deployment.pull_steps[0].items()
    stored = emulator.buckets[bucket].objects[f"bundles/{options['sha256']}.tar.gz"]
    assert stored.data == client.download_bundle(options["sha256"])
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", owner_key)

    # Again, for the existing pool, from its records (no --region): nothing changes.
    emulator.calls.clear()
    again = cli("work-pool", "provision-infra", "cr-pool", "--yes", "--json")
    assert again.exit_code == 0, again.stderr
    assert emulator.calls.mutating() == []
    account = emulator.service_accounts[account_email("cr-pool", "cp")]
    assert len(account.user_keys()) == 1

    removed = cli("work-pool", "deprovision-infra", "cr-pool", "--yes")
    assert removed.exit_code == 0, removed.stderr
    assert ours_left(emulator) == []
    assert bucket not in emulator.buckets
    removed = cli("work-pool", "delete", "cr-pool", "--yes", "--force")
    assert removed.exit_code == 0, removed.stderr
    assert cli("block", "inspect", "cr-pool-gcp-credentials").exit_code != 0
    assert cli("work-pool", "ls", "--json").json() == []


def test_no_key_where_keys_are_forbidden(server, cli, client, emulator) -> None:
    emulator.forbid_key_creation(PROJECT)
    refused = create(cli, "--yes")
    assert refused.exit_code == 1
    error = refused.stderr.strip().splitlines()
    assert len(error) == 1 and "Traceback" not in refused.stderr
    assert "forbids service-account keys" in error[0] and "--no-key" in error[0]
    assert cli("work-pool", "ls", "--json").json() == []

    keyless = create(cli, "--yes", "--no-key")
    assert keyless.exit_code == 0, keyless.stderr
    assert "--no-key: no key and no credentials block" in " ".join(keyless.stdout.split())
    pool = client.get_work_pool("cr-pool")
    assert defaults(pool)["project"] == PROJECT
    assert not defaults(pool).get("credentials")
    assert cli("block", "inspect", "cr-pool-gcp-credentials").exit_code != 0

    assert cli("work-pool", "deprovision-infra", "cr-pool", "--yes").exit_code == 0
    assert ours_left(emulator) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--region", "mars-west1"],
            "Error: Cloud Run does not run in region 'mars-west1'; pass --region with a Cloud "
            "Run region such as us-central1, europe-west1 or asia-northeast1",
        ),
        (
            ["--project", "no-such-project"],
            "Error: Google Cloud project 'no-such-project' does not exist or owner@proj-a.iam."
            "gserviceaccount.com may not see it (resourcemanager.projects.get): check --project",
        ),
        (["--profile", "dev"], "Error: --profile applies to ecs:push pools, not 'cloud-run:push'"),
    ],
    ids=["region-without-cloud-run", "unknown-project", "flag-of-another-type"],
)
def test_bad_input_is_one_line(server, cli, emulator, flags: list[str], message: str) -> None:
    result = cli(
        "work-pool", "create", "cr-pool", "--type", "cloud-run:push", "--provision-infra",
        "--yes", *flags,
    )  # fmt: skip
    assert result.exit_code == 1
    assert " ".join(result.stderr.split()) == message
    assert emulator.calls.mutating() == []


def test_no_credentials_at_all_names_what_to_set(
    server, cli, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    result = create(cli, "--yes", "--project", PROJECT)
    assert result.exit_code == 1
    assert " ".join(result.stderr.split()) == (
        "Error: no Google Cloud credentials found: set GOOGLE_APPLICATION_CREDENTIALS to a "
        "service-account key file, or run `gcloud auth application-default login`"
    )
