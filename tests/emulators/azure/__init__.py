"""Azure for tests: Entra ID and Azure Resource Manager on 127.0.0.1, driven by the real SDKs.

`AzureEmulator` serves, over HTTPS with its own certificate:
- Entra: MSAL's tenant discovery and the client-credentials token endpoint, so
  ClientSecretCredential / EnvironmentCredential sign in (with `authority=<endpoint>`,
  `disable_instance_discovery=True`, `connection_verify=<ca_bundle>`); and, over plain HTTP,
  App Service's managed-identity endpoint for ManagedIdentityCredential.
- ARM, checking every call's bearer token and RBAC permission (built-in roles, assignments at
  subscription, group or resource scope, linked authorization for identities): subscriptions
  and locations, providers, resource groups, user-assigned identities, container registries,
  role assignments and definitions, and container groups whose containers really run as local
  processes (tests.emulators.containers), with ACI's states, events, logs and limits.
- Long-running operations with Azure-AsyncOperation / Location and a small Retry-After.

Layout, in moto's manner: one package per provider (models.py: state and rules, responses.py:
wire format, urls.py: routes and the RBAC action of each), plus pipeline.py (what ARM does to
every call), state.py (rules that span providers) and emulator.py (the object tests hold).
`python -m tests.emulators.azure` runs it standalone.
"""

from tests.emulators.azure.aci.models import ContainerGroup, ContainerInstance, ContainerRun
from tests.emulators.azure.emulator import AzureEmulator
from tests.emulators.azure.entra.models import Principal
from tests.emulators.azure.faults import CallRecord, Fault

__all__ = [
    "AzureEmulator",
    "CallRecord",
    "ContainerGroup",
    "ContainerInstance",
    "ContainerRun",
    "Fault",
    "Principal",
]
