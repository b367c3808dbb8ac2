"""The Azure plan: which steps, in which order, and what the pool's job template gets from them.

Least privilege for the control plane (the server that starts container groups): Azure
Container Instances Contributor Role on the pool's resource group only (create, read, stop,
delete container groups, read their logs) and Managed Identity Operator on the pool's identity
only (assigning it to a group needs .../userAssignedIdentities/assign/action). Never Owner or
Contributor, never at subscription scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provisioners.azure.base import AzureStep, StepIds
from provisioners.azure.clients import AzureClients, AzureContext
from provisioners.azure.config import CLOUD, ROLES, AzureProvisionConfig
from provisioners.azure.errors import absent
from provisioners.azure.group import ResourceGroupStep
from provisioners.azure.identity import IdentityStep
from provisioners.azure.providers import ProvidersStep
from provisioners.azure.registry import RegistryStep
from provisioners.azure.roles import RoleAssignmentStep
from provisioners.azure.secret import CredentialsBlockStep
from provisioners.azure.subscription import SubscriptionStep
from provisioners.plan import Plan, ProvisioningError, Recorder, ResourceRecord
from push_pools.errors import InvalidInput

__all__ = ["azure_steps", "build_azure_plan", "template_defaults"]


def _identity_principal(ctx: AzureContext) -> str | None:
    recorded = ctx.output(StepIds.IDENTITY, "principal_id")
    if recorded is not None:
        return str(recorded)
    identity = absent(
        ctx.clients.identities.user_assigned_identities.get,
        ctx.names.resource_group,
        ctx.names.identity,
    )
    return str(identity.principal_id) if identity is not None else None


def _control_principal(step_id: str) -> Any:
    def resolve(ctx: AzureContext) -> str | None:
        return ctx.control_principal(recorded=ctx.output(step_id, "principal_id"))

    return resolve


def _on(resource: str, needed: str) -> Any:
    """The scope: `resource`'s id (a property of the context) once step `needed` ran."""

    def resolve(ctx: AzureContext) -> str | None:
        if needed not in ctx.outputs:
            return None
        return str(getattr(ctx, resource))

    return resolve


def azure_steps(config: AzureProvisionConfig) -> tuple[list[AzureStep], list[AzureStep]]:
    """(steps to apply, retired steps). The block step is retired with --managed-identity, so
    a teardown still forgets a block an earlier run stored."""
    names = config.names
    block = CredentialsBlockStep(config.credentials_block_name)
    retired: list[AzureStep] = [] if config.stores_secret else [block]
    steps: list[AzureStep] = []
    steps += [
        # First, so every partial apply has it: it pins where, and its teardown sweeps.
        SubscriptionStep(lambda: [*steps[1:], *retired]),
        ProvidersStep(),
        ResourceGroupStep(names.resource_group),
        IdentityStep(names.identity),
        RegistryStep(names.registry),
        RoleAssignmentStep(
            StepIds.ACR_PULL,
            ROLES.ACR_PULL,
            "AcrPull",
            scope=_on("registry_id", StepIds.REGISTRY),
            principal=_identity_principal,
            title=f"AcrPull for {names.identity} on {names.registry}",
        ),
        RoleAssignmentStep(
            StepIds.CONTROL_ACI,
            ROLES.ACI_CONTRIBUTOR,
            "Azure Container Instances Contributor Role",
            scope=_on("group_id", StepIds.RESOURCE_GROUP),
            principal=_control_principal(StepIds.CONTROL_ACI),
            title=f"ACI Contributor on {names.resource_group}, for the server's principal",
        ),
        RoleAssignmentStep(
            StepIds.CONTROL_IDENTITY,
            ROLES.IDENTITY_OPERATOR,
            "Managed Identity Operator",
            scope=_on("identity_id", StepIds.IDENTITY),
            principal=_control_principal(StepIds.CONTROL_IDENTITY),
            title=f"Managed Identity Operator on {names.identity}, for the server's principal",
        ),
        # Last: the only step with an effect outside Azure (the credentials block).
        *([block] if config.stores_secret else []),
    ]
    return steps, retired


def build_azure_plan(
    config: AzureProvisionConfig,
    recorder: Recorder,
    *,
    clients: AzureClients,
    credentials_store: Any,
) -> Plan:
    """The Plan that provisions (apply), previews or tears down `config`'s pool in Azure.

    `credentials_store`: provisioners.registry.CredentialsStore for azure-credentials blocks.
    """
    steps, retired = azure_steps(config)
    ids = [s.id for s in steps]
    if config.fail_at_step is not None and config.fail_at_step not in ids:
        raise InvalidInput(f"fail_at_step {config.fail_at_step!r} is not one of {ids}")
    ctx = AzureContext(config, clients, credentials_store=credentials_store)
    return Plan(steps, ctx, recorder, retired=retired, cloud=CLOUD)


def template_defaults(
    outputs: Mapping[str, ResourceRecord], config: AzureProvisionConfig
) -> dict[str, Any]:
    """Job-variable defaults for the `azure-container-instance:push` pool's base job template,
    from `apply()`'s records (the names the ACI executor reads)."""
    needed = [StepIds.SUBSCRIPTION, StepIds.IDENTITY, StepIds.REGISTRY]
    missing = [step for step in needed if step not in outputs]
    if missing:
        raise ProvisioningError(
            f"cannot fill the pool's job template: no record for {', '.join(missing)}; "
            "run the provisioning to completion first",
            cloud=CLOUD,
        )
    where = outputs[StepIds.SUBSCRIPTION].data
    identity = outputs[StepIds.IDENTITY].data["id"]
    defaults: dict[str, Any] = {
        "subscription_id": where["subscription_id"],
        "resource_group_name": where["resource_group"],
        "location": where["location"],
        "identities": [identity],
        "image_registry": {
            "registry_url": outputs[StepIds.REGISTRY].data["login_server"],
            "identity": identity,
        },
    }
    if config.stores_secret:
        defaults["aci_credentials"] = config.credentials_block_name
    return defaults
