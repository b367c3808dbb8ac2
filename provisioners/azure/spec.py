"""The Azure provisioner as the CLI sees it: its pool type, flags and credentials block type.

Stdlib only (see provisioners/options.py); `provisioners.azure.adapter` holds the provisioner.
"""

from __future__ import annotations

from provisioners.options import ProvisionerSpec, ProvisionOption

__all__ = ["POOL_TYPE", "PROVISIONER"]

POOL_TYPE = "azure-container-instance:push"

PROVISIONER = ProvisionerSpec(
    cloud="azure",
    pool_types=(POOL_TYPE,),
    credentials_block_type="azure-credentials",
    provisioner="provisioners.azure.adapter:AzureProvisioner",
    creates="providers registered, resource group, managed identity, container registry, "
    "role assignments scoped to them, the principal's secret in an azure-credentials block",
    options=(
        ProvisionOption(
            "subscription",
            "Azure subscription ID (default: AZURE_SUBSCRIPTION_ID; a provisioned pool keeps "
            "its subscription).",
        ),
        ProvisionOption(
            "location",
            "Azure location, e.g. westeurope (required for a new pool; checked against the "
            "subscription's locations; a provisioned pool keeps its location).",
        ),
        ProvisionOption(
            "resource_group",
            "Resource group to put the pool's resources in (default: push-pools-<pool>; an "
            "existing group is used and never deleted).",
        ),
        ProvisionOption(
            "client_id",
            "Application (client) ID of the service principal the server calls Azure as "
            "(default: AZURE_CLIENT_ID).",
        ),
        ProvisionOption(
            "tenant_id", "Entra tenant ID of that service principal (default: AZURE_TENANT_ID)."
        ),
        ProvisionOption(
            "client_secret",
            "Its client secret, stored only in an encrypted azure-credentials block "
            "(default: AZURE_CLIENT_SECRET).",
        ),
        ProvisionOption(
            "managed_identity",
            "The server runs in Azure with a managed identity: store no secret at all; roles "
            "go to --principal-id (default: the identity provisioning runs as).",
            value_type=bool,
            default=False,
        ),
        ProvisionOption(
            "principal_id",
            "Object ID of the server's principal to grant roles to, when it is not the one "
            "signed in (with --managed-identity).",
        ),
    ),
)
