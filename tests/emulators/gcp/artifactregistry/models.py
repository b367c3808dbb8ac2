"""Repositories, kept as artifactregistry_v1.Repository messages with the server's fields set."""

from __future__ import annotations

import re
from collections.abc import Callable

from google.cloud import artifactregistry_v1

from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.run.models import REGIONS
from tests.emulators.gcp.wire import to_datetime

__all__ = ["LOCATIONS", "ArtifactRegistryBackend"]

# Artifact Registry has the Cloud Run regions plus multi-regions.
LOCATIONS = REGIONS | {"us", "europe", "asia"}
_REPOSITORY_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
Repository = artifactregistry_v1.Repository
_HOSTS = {
    Repository.Format.DOCKER: "docker.pkg.dev",
    Repository.Format.PYTHON: "python.pkg.dev",
    Repository.Format.NPM: "npm.pkg.dev",
    Repository.Format.MAVEN: "maven.pkg.dev",
}


class ArtifactRegistryBackend:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.repositories: dict[str, Repository] = {}

    def create_repository(
        self, project_id: str, location: str, repository_id: str, spec: Repository
    ) -> Repository:
        check_location(location)
        if not _REPOSITORY_ID.match(repository_id or ""):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid repository id '{repository_id}': it must start with a lowercase "
                "letter, contain only lowercase letters, numbers and hyphens and be at most "
                "63 characters.",
            )
        if spec.format_ == Repository.Format.FORMAT_UNSPECIFIED:
            raise ApiError("INVALID_ARGUMENT", "Repository format must be specified.")
        name = f"projects/{project_id}/locations/{location}/repositories/{repository_id}"
        if name in self.repositories:
            raise ApiError("ALREADY_EXISTS", "the repository already exists")
        repository = Repository.deserialize(Repository.serialize(spec))
        repository.name = name
        now = to_datetime(self.clock())
        repository.create_time = now
        repository.update_time = now
        if repository.mode == Repository.Mode.MODE_UNSPECIFIED:
            repository.mode = Repository.Mode.STANDARD_REPOSITORY
        host = _HOSTS.get(repository.format_)
        if host:
            repository.registry_uri = f"{location}-{host}/{project_id}/{repository_id}"
        self.repositories[name] = repository
        return repository

    def get_repository(self, name: str) -> Repository:
        repository = self.repositories.get(name)
        if repository is None:
            raise ApiError("NOT_FOUND", f"Requested entity was not found. ({name})")
        return repository

    def list_repositories(self, project_id: str, location: str) -> list[Repository]:
        check_location(location)
        prefix = f"projects/{project_id}/locations/{location}/repositories/"
        return sorted(
            (r for n, r in self.repositories.items() if n.startswith(prefix)),
            key=lambda r: r.name,
        )

    def delete_repository(self, name: str) -> None:
        self.get_repository(name)
        del self.repositories[name]


def check_location(location: str) -> None:
    if location not in LOCATIONS:
        raise ApiError("INVALID_ARGUMENT", f"Invalid location: {location}")
