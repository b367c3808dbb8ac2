"""The built-in role definitions push-pools may assign, with Azure's ids and permissions.

Ids, actions and notActions as Azure's built-in roles reference lists them (General, Containers,
Identity, Privileged and Monitor categories).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUILTIN_ROLES", "RoleDefinition"]


@dataclass(frozen=True)
class RoleDefinition:
    guid: str
    role_name: str
    description: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    role_type: str = "BuiltInRole"


_READ_BASICS = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Support/*",
)

BUILTIN_ROLES: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles in "
        "Azure RBAC.",
        ("*",),
    ),
    RoleDefinition(
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Contributor",
        "Grants full access to manage all resources, but does not allow you to assign roles in "
        "Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
        ("*",),
        (
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
        ),
    ),
    RoleDefinition(
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "Reader",
        "View all resources, but does not allow you to make any changes.",
        ("*/read",),
    ),
    RoleDefinition(
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "User Access Administrator",
        "Lets you manage user access to Azure resources.",
        ("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
    ),
    RoleDefinition(
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        "Role Based Access Control Administrator",
        "Manage access to Azure resources by assigning roles using Azure RBAC. This role does "
        "not allow you to manage access using other ways, such as Azure Policy.",
        (
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ),
    ),
    RoleDefinition(
        "7f951dda-4ed3-4680-a7ca-43fe172d538d",
        "AcrPull",
        "acr pull",
        ("Microsoft.ContainerRegistry/registries/pull/read",),
    ),
    RoleDefinition(
        "8311e382-0749-4cb8-b61a-304f252e45ec",
        "AcrPush",
        "acr push",
        (
            "Microsoft.ContainerRegistry/registries/pull/read",
            "Microsoft.ContainerRegistry/registries/push/write",
        ),
    ),
    RoleDefinition(
        "5d977122-f97e-4b4d-a52f-6b43003ddb4d",
        "Azure Container Instances Contributor Role",
        "Grants read/write access to container groups provided by Azure Container Instances",
        (
            "Microsoft.Authorization/*/read",
            "Microsoft.ContainerInstance/containerGroups/*",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
        ),
    ),
    RoleDefinition(
        "f1a07417-d97a-45cb-824c-7a7467783830",
        "Managed Identity Operator",
        "Read and Assign User Assigned Identity",
        (
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            *_READ_BASICS,
        ),
    ),
    RoleDefinition(
        "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
        "Managed Identity Contributor",
        "Create, Read, Update, and Delete User Assigned Identity",
        (
            "Microsoft.ManagedIdentity/userAssignedIdentities/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/write",
            "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
            "Microsoft.ManagedIdentity/userAssignedIdentities/revokeTokens/action",
            *_READ_BASICS,
        ),
    ),
    RoleDefinition(
        "73c42c96-874c-492b-b04d-ab87d138a893",
        "Log Analytics Reader",
        "Log Analytics Reader can view and search all monitoring data as well as and view "
        "monitoring settings, including viewing the configuration of Azure diagnostics on all "
        "Azure resources.",
        (
            "*/read",
            "Microsoft.OperationalInsights/workspaces/analytics/query/action",
            "Microsoft.OperationalInsights/workspaces/search/action",
            "Microsoft.Support/*",
        ),
        ("Microsoft.OperationalInsights/workspaces/sharedKeys/read",),
    ),
)
