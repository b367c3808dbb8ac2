"""The `cloud-run:push` pool type: each flow run is a Google Cloud Run job execution.

Modules: template (the pool type and its default template), checks (cpu/memory and the other
deploy-time rules), job (the run's settings and names, pure), gcp (clients, credentials, error
translation), status (Execution -> InfrastructureStatus), executor (CloudRunExecutor, the verbs
of push_pools.executors.base). Only executor and gcp import Google's libraries, so the registry
reading `template` stays cheap and works without them.

Pitfalls, each handled where it bites:
- `run_job`'s operation is done only when the execution ends: the execution's name is read from
  the operation's metadata at once, never from `.result()`.
- Cloud Run picks the execution's name; the run's infrastructure id must be known before (the
  engine reports it from PUSH_POOLS_INFRASTRUCTURE_ID), so it is derived from the job and the
  run, and travels in the execution's env override, which is how a retried submit (or a server
  after a restart) finds the execution again.
- `run_job` is not idempotent: after a failed call the executor looks for the execution before
  calling again, never retrying blindly.
- One job per deployment and job-shaping settings, found again by its name (a hash of its
  spec); env, args and timeout are per-run overrides, so they make no new job.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CloudRunExecutor"]


def __getattr__(name: str) -> Any:
    # Lazily: importing the package for its template must not import Google's libraries.
    if name == "CloudRunExecutor":
        from push_pools.executors.cloud_run.executor import CloudRunExecutor

        return CloudRunExecutor
    raise AttributeError(name)
