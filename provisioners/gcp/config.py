"""What a GCP provisioning run is asked to do: the pool, the project, the region, the names.

Stdlib and push_pools.errors only, so a bad pool name or region is reported before any Google
library is imported.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from push_pools.errors import InvalidInput

__all__ = [
    "CLOUD_RUN_REGIONS",
    "DEFAULT_REGION",
    "LABEL_MANAGED_BY",
    "LABEL_POOL",
    "MANAGED_BY",
    "REQUIRED_SERVICES",
    "GcpNames",
    "GcpProvisionConfig",
    "InjectedFailure",
]

CLOUD = "gcp"
DEFAULT_REGION = "us-central1"
REQUIRED_SERVICES = (
    "run.googleapis.com",
    "artifactregistry.googleapis.com",
    "iam.googleapis.com",
)
# Labels on what we create (label keys and values: lowercase letters, digits, - and _).
LABEL_POOL = "push-pools-pool"
LABEL_MANAGED_BY = "push-pools-managed-by"
MANAGED_BY = "push-pools"

# Where Cloud Run jobs run (Google's list of Cloud Run locations). Checked locally so a typo is
# one clear line before any call; an unlisted new region fails here until this list learns it.
CLOUD_RUN_REGIONS = frozenset(
    {
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
        "europe-central2",
        "europe-north1",
        "europe-north2",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-west10",
        "europe-west12",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "northamerica-south1",
        "southamerica-east1",
        "southamerica-west1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
    }
)

# The pool name becomes part of the repository id and of service-account ids (which allow
# 6 to 30 characters: lowercase letters, digits, hyphens); one rule for all of them.
_POOL_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,39}", re.ASCII)
POOL_NAME_RULE = (
    "1 to 40 characters: lowercase letters, digits and single hyphens, starting and ending "
    "with a letter or digit"
)
# Project ids: 6 to 30 characters, a letter first, no trailing hyphen.
_PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", re.ASCII)
_ACCOUNT_ID_MAX = 30


class InjectedFailure(RuntimeError):
    """Raised by the `fail_at_step` test hook: a crash between a cloud call and its record."""


def _account_id(pool: str, role: str) -> str:
    account_id = f"pp-{pool}-{role}"
    if len(account_id) <= _ACCOUNT_ID_MAX:
        return account_id
    # Too long: a prefix of the pool name and a hash of all of it, still deterministic.
    digest = hashlib.sha256(pool.encode()).hexdigest()[:6]
    room = _ACCOUNT_ID_MAX - len(f"pp--{digest}-{role}")
    return f"pp-{pool[:room].rstrip('-')}-{digest}-{role}"


@dataclass(frozen=True)
class GcpNames:
    """Names derived from the pool name: the same pool always finds the same resources."""

    repository: str
    runtime_account: str  # account ids, without "@project.iam.gserviceaccount.com"
    control_account: str

    @classmethod
    def of(cls, pool: str) -> GcpNames:
        return cls(
            repository=f"push-pools-{pool}",
            runtime_account=_account_id(pool, "run"),
            control_account=_account_id(pool, "cp"),
        )


@dataclass(frozen=True)
class GcpProvisionConfig:
    """One provisioning run for a `cloud-run:push` pool.

    `project`/`region` are already resolved (provisioners.gcp.adapter does that from the
    flags, the records and the application-default credentials). `key` False: no key and no
    block (the server runs with its own application-default credentials).
    `credentials_block_name` empty: "<pool>-gcp-credentials".
    `fail_at_step`: test hook; that step's create raises InjectedFailure right after its cloud
    calls succeeded, before the Plan records it.
    """

    pool_name: str
    project: str
    region: str
    key: bool = True
    credentials_block_name: str = ""
    fail_at_step: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pool_name, str) or not _POOL_NAME.fullmatch(self.pool_name):
            raise InvalidInput(
                f"pool name {self.pool_name!r} cannot be used for Google Cloud resource names: "
                f"{POOL_NAME_RULE} (e.g. 'cloud-run-pool')"
            )
        if not _PROJECT_ID.fullmatch(self.project or ""):
            raise InvalidInput(
                f"{self.project!r} is not a Google Cloud project ID (6 to 30 lowercase letters, "
                "digits and hyphens, starting with a letter); pass --project"
            )
        if self.region not in CLOUD_RUN_REGIONS:
            raise InvalidInput(
                f"Cloud Run does not run in region {self.region!r}; pass --region with a Cloud "
                "Run region such as us-central1, europe-west1 or asia-northeast1"
            )
        if not self.credentials_block_name:
            object.__setattr__(self, "credentials_block_name", f"{self.pool_name}-gcp-credentials")

    @property
    def names(self) -> GcpNames:
        return GcpNames.of(self.pool_name)

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_POOL: self.pool_name, LABEL_MANAGED_BY: MANAGED_BY}

    def account_email(self, account_id: str) -> str:
        return f"{account_id}@{self.project}.iam.gserviceaccount.com"
