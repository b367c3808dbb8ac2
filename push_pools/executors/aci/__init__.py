"""The `azure-container-instance:push` pool type: each flow run is an Azure Container Instances
container group, created by the server (no worker).

Modules: template (the pool type and its default template, stdlib only), checks (cpu/memory
within ACI's limits and the other deploy-time rules), job (the run's settings, names and the
group's ARM body; pure), azure (clients with bounded retries, and ARM errors as push-pools
errors), status (instance view -> InfrastructureStatus; pure), executor (AciExecutor, the verbs
of push_pools.executors.base), credentials (sign-in and client settings, shared with
provisioners/azure). Only executor, azure and credentials import Azure's libraries, and only
inside functions, so the registry reading `template` stays cheap.

Pitfalls, each handled where it bites:
- The create is a long-running operation that lasts until the image is pulled: submit sends the
  PUT with polling=False and status() watches the instance view instead of a poller thread.
- A second PUT of a finished group (restartPolicy Never) would run it again: submit reads the
  group first and adopts it; only the SDK's own retry of a lost answer repeats the PUT, which
  ACI takes as the same group.
- azure-mgmt-core registers a missing provider itself, sleeping 10 s per poll with no bound:
  the executor registers Microsoft.ContainerInstance first, polling for at most a minute.
- azure-core's default retry policy backs off for minutes; the clients get 3 retries at most 4 s
  apart, so a dispatcher thread is never held long.
- ARM checks roles before existence: to a principal with a role on one resource group, a
  missing resource group is a 403, whose message names both causes.
- The run's API token is a secureValue: ACI never returns it, unlike a plain value.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AciExecutor"]


def __getattr__(name: str) -> Any:
    # Lazily: importing the package for its template must not import Azure's libraries.
    if name == "AciExecutor":
        from push_pools.executors.aci.executor import AciExecutor

        return AciExecutor
    raise AttributeError(name)
