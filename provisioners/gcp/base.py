"""GCP's step base (provisioners/step.py's CloudStep with Google's error boundary), plus the
ownership marks the resource modules share."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any

from provisioners.gcp.clients import GcpContext
from provisioners.gcp.config import CLOUD, LABEL_MANAGED_BY, LABEL_POOL, MANAGED_BY
from provisioners.gcp.errors import translate_errors
from provisioners.step import CloudStep
from push_pools.errors import InvalidInput

__all__ = ["GcpStep", "StepIds", "account_mark", "label_owner", "marked_pool", "owned"]


class StepIds:
    """Step ids: records are stored under them, so they never change once released."""

    PROJECT = "gcp-project"
    SERVICES = "gcp-services"
    REPOSITORY = "gcp-artifact-repository"
    RUNTIME_ACCOUNT = "gcp-runtime-account"
    CONTROL_ACCOUNT = "gcp-control-account"
    ACT_AS = "gcp-runtime-account-user"
    PROJECT_ROLE = "gcp-project-run-developer"
    BUCKET = "gcp-bundle-bucket"
    BUCKET_ROLE = "gcp-bundle-bucket-object-admin"
    KEY = "gcp-control-account-key"


class GcpStep(CloudStep[GcpContext]):
    """Base of every GCP step. Subclasses set `id`, `kind` and `title`."""

    cloud = CLOUD
    # Drift on an adopted resource is converged too (a binding we add to someone's policy).
    converge_adopted = True

    def _boundary(self) -> AbstractContextManager[None]:
        return translate_errors(self.id)


def owned(ctx: GcpContext, pool: str | None, managed: bool, what: str) -> bool:
    """True if the marks say this pool made it; False if it may be adopted as is.

    A resource of another push-pools pool is never shared: that pool's teardown would delete
    it from under us.
    """
    if managed and pool == ctx.config.pool_name:
        return True
    if pool is not None and pool != ctx.config.pool_name:
        raise InvalidInput(
            f"{what} already exists and belongs to push-pools pool {pool!r}; pools cannot share "
            "it: give this pool another name"
        )
    return False


def label_owner(labels: Any) -> tuple[str | None, bool]:
    """(pool, made by push-pools) from a resource's labels."""
    found = dict(labels or {})
    return found.get(LABEL_POOL), found.get(LABEL_MANAGED_BY) == MANAGED_BY


# Service accounts have no labels: their description carries the mark.
_ACCOUNT_MARK = re.compile(r"^Made by push-pools for pool ([a-z0-9-]+)\b")


def account_mark(pool: str, purpose: str) -> str:
    return f"Made by push-pools for pool {pool}: {purpose}"


def marked_pool(description: str) -> str | None:
    found = _ACCOUNT_MARK.match(description or "")
    return found.group(1) if found else None
