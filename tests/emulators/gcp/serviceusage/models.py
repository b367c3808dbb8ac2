"""Enabled services per project. New projects start with the APIs Google enables by default."""

from __future__ import annotations

import re

from tests.emulators.gcp.errors import ApiError

__all__ = ["DEFAULT_ENABLED", "ServiceUsageBackend"]

# What a new Google Cloud project has enabled before anyone touches it.
DEFAULT_ENABLED = (
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "cloudapis.googleapis.com",
    "clouddebugger.googleapis.com",
    "cloudtrace.googleapis.com",
    "datastore.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "servicemanagement.googleapis.com",
    "serviceusage.googleapis.com",
    "sql-component.googleapis.com",
    "storage-api.googleapis.com",
    "storage-component.googleapis.com",
    "storage.googleapis.com",
)
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9.-]*\.googleapis\.com$")
TITLES = {
    "run.googleapis.com": "Cloud Run Admin API",
    "artifactregistry.googleapis.com": "Artifact Registry API",
    "iam.googleapis.com": "Identity and Access Management (IAM) API",
    "iamcredentials.googleapis.com": "IAM Service Account Credentials API",
    "cloudresourcemanager.googleapis.com": "Cloud Resource Manager API",
    "serviceusage.googleapis.com": "Service Usage API",
    "logging.googleapis.com": "Cloud Logging API",
    "storage.googleapis.com": "Cloud Storage API",
}


class ServiceUsageBackend:
    def __init__(self) -> None:
        self.enabled: dict[str, set[str]] = {}

    def add_project(self, project_id: str) -> None:
        self.enabled.setdefault(project_id, set(DEFAULT_ENABLED))

    def check_name(self, service: str) -> None:
        if not _SERVICE.match(service):
            raise ApiError(
                "PERMISSION_DENIED", f"Not found or permission denied for service(s): {service}."
            )

    def is_enabled(self, project_id: str, service: str) -> bool:
        return service in self.enabled.get(project_id, set())

    def enable_service(self, project_id: str, service: str) -> None:
        self.check_name(service)
        self.enabled.setdefault(project_id, set()).add(service)

    def disable_service(self, project_id: str, service: str) -> None:
        self.check_name(service)
        self.enabled.setdefault(project_id, set()).discard(service)

    def known_services(self, project_id: str) -> list[str]:
        """Every service a list shows: the catalogue we know of plus whatever was enabled."""
        return sorted({*TITLES, *DEFAULT_ENABLED, *self.enabled.get(project_id, set())})
