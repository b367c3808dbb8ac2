"""The GCP plan: which steps, in which order, and what the pool's job template gets from them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provisioners.gcp.accounts import ServiceAccountStep
from provisioners.gcp.artifacts import RepositoryStep
from provisioners.gcp.base import GcpStep, StepIds
from provisioners.gcp.bindings import RoleBindingStep
from provisioners.gcp.clients import GcpClients, GcpContext
from provisioners.gcp.config import CLOUD, GcpProvisionConfig
from provisioners.gcp.keys import KeyStep
from provisioners.gcp.project import ProjectStep
from provisioners.gcp.services import ServicesStep
from provisioners.gcp.storage import BUNDLE_PREFIX, BucketRoleStep, BucketStep
from provisioners.plan import Plan, ProvisioningError, Recorder, ResourceRecord
from push_pools.errors import InvalidInput

__all__ = ["build_gcp_plan", "gcp_steps", "template_defaults"]

RUN_DEVELOPER = "roles/run.developer"
ACCOUNT_USER = "roles/iam.serviceAccountUser"


def gcp_steps(config: GcpProvisionConfig) -> tuple[list[GcpStep], list[GcpStep]]:
    """(steps to apply, retired steps). The key is retired with --no-key, so a teardown can
    still delete one an earlier run made."""
    names = config.names
    key = KeyStep(names.control_account, config.credentials_block_name)
    steps: list[GcpStep] = []
    retired: list[GcpStep] = [] if config.key else [key]
    steps += [
        # First, so every partial apply has it: it pins the project, and its teardown sweeps.
        ProjectStep(lambda: [*steps[1:], *retired]),
        ServicesStep(),
        RepositoryStep(names.repository),
        BucketStep(),
        ServiceAccountStep(StepIds.RUNTIME_ACCOUNT, names.runtime_account, "runs Cloud Run jobs"),
        ServiceAccountStep(
            StepIds.CONTROL_ACCOUNT, names.control_account, "starts Cloud Run jobs (server)"
        ),
        RoleBindingStep(
            StepIds.ACT_AS, ACCOUNT_USER, names.control_account, on_account=names.runtime_account
        ),
        RoleBindingStep(StepIds.PROJECT_ROLE, RUN_DEVELOPER, names.control_account),
        BucketRoleStep(names.control_account),
        # Last: the only step with an effect outside Google Cloud (the credentials block).
        *([key] if config.key else []),
    ]
    return steps, retired


def build_gcp_plan(
    config: GcpProvisionConfig,
    recorder: Recorder,
    *,
    clients: GcpClients,
    credentials_store: Any,
) -> Plan:
    """The Plan that provisions (apply), previews or tears down `config`'s pool in GCP.

    `credentials_store`: provisioners.registry.CredentialsStore for gcp-credentials blocks.
    """
    steps, retired = gcp_steps(config)
    ids = [s.id for s in steps]
    if config.fail_at_step is not None and config.fail_at_step not in ids:
        raise InvalidInput(f"fail_at_step {config.fail_at_step!r} is not one of {ids}")
    ctx = GcpContext(config, clients, credentials_store=credentials_store)
    return Plan(steps, ctx, recorder, retired=retired, cloud=CLOUD)


def template_defaults(
    outputs: Mapping[str, ResourceRecord], config: GcpProvisionConfig
) -> dict[str, Any]:
    """Job-variable defaults for the `cloud-run:push` pool's base job template, from
    `apply()`'s records (names as in Prefect's cloud-run-v2 template, plus `project` and the
    repository to push images to)."""
    needed = [StepIds.REPOSITORY, StepIds.BUCKET, StepIds.RUNTIME_ACCOUNT]
    absent = [step for step in needed if step not in outputs]
    if absent:
        raise ProvisioningError(
            f"cannot fill the pool's job template: no record for {', '.join(absent)}; "
            "run the provisioning to completion first",
            cloud=CLOUD,
        )
    repository = outputs[StepIds.REPOSITORY].data
    defaults: dict[str, Any] = {
        # Jobs run where the images are: the repository's region.
        "region": repository["region"],
        "project": config.project,
        "service_account_name": outputs[StepIds.RUNTIME_ACCOUNT].data["email"],
        "image_repository": repository["url"],
        # The server keeps this pool's code bundles there (push_pools/bundle_storage.py).
        "bundle_storage": f"gs://{outputs[StepIds.BUCKET].data['name']}/{BUNDLE_PREFIX}",
    }
    if config.key:
        defaults["credentials"] = config.credentials_block_name
    return defaults
