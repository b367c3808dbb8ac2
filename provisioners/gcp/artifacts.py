"""Artifact Registry step: the docker repository deployments push flow images to, in the
pool's region. Verbs follow provisioners/plan.py; teardown deletes it with its images (it was
made for this pool, and teardown is the CLI's confirmed, destructive command)."""

from __future__ import annotations

from typing import Any

from provisioners.gcp.base import GcpStep, StepIds, label_owner, owned
from provisioners.gcp.clients import OPERATION_TIMEOUT, GcpContext, retry
from provisioners.gcp.errors import absent, canonical_code
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck

__all__ = ["RepositoryStep", "repository_url"]

SERVICE = "artifactregistry.googleapis.com"


def repository_url(region: str, project: str, repository: str) -> str:
    """Where images of the repository are pushed: REGION-docker.pkg.dev/PROJECT/REPOSITORY."""
    return f"{region}-docker.pkg.dev/{project}/{repository}"


class RepositoryStep(GcpStep):
    id = StepIds.REPOSITORY
    kind = "gcp:artifactregistry:repository"

    def __init__(self, repository_id: str) -> None:
        self.repository_id = repository_id
        self.title = f"Artifact Registry docker repository {repository_id}"

    def _name(self, ctx: GcpContext) -> str:
        return f"projects/{ctx.project}/locations/{ctx.region}/repositories/{self.repository_id}"

    def _find(self, ctx: GcpContext) -> Any:
        return absent(ctx.clients.artifacts.get_repository, name=self._name(ctx), retry=retry())

    def _record_of(self, ctx: GcpContext, repository: Any) -> ResourceRecord:
        from google.cloud import artifactregistry_v1

        if repository.format_ != artifactregistry_v1.Repository.Format.DOCKER:
            raise ProvisioningError(
                f"repository {self.repository_id} in {ctx.region} exists but does not hold "
                f"docker images ({repository.format_.name}); delete it or rename the pool"
            )
        pool, managed = label_owner(repository.labels)
        created = owned(ctx, pool, managed, f"Artifact Registry repository {self.repository_id}")
        data = {
            "name": repository.name,
            "region": ctx.region,
            "url": repository_url(ctx.region, ctx.project, self.repository_id),
        }
        return self.record(repository.name, data, created=created)

    def _check(self, ctx: GcpContext) -> StepCheck:
        if SERVICE in ctx.pending_services:
            return self.missing("after the Artifact Registry API is enabled")
        repository = self._find(ctx)
        if repository is None:
            return self.missing(f"docker images, in {ctx.region}")
        return self.found(self._record_of(ctx, repository))

    def _create(self, ctx: GcpContext) -> ResourceRecord:
        from google.api_core.exceptions import Conflict
        from google.cloud import artifactregistry_v1

        spec = artifactregistry_v1.Repository(
            format_=artifactregistry_v1.Repository.Format.DOCKER,
            labels=ctx.labels,
            description=f"Flow images of push-pools pool {ctx.config.pool_name}",
        )
        try:
            operation = ctx.clients.artifacts.create_repository(
                parent=f"projects/{ctx.project}/locations/{ctx.region}",
                repository_id=self.repository_id,
                repository=spec,
                retry=retry(),
            )
            operation.result(timeout=OPERATION_TIMEOUT)
        except Conflict as exc:
            if canonical_code(exc) != "ALREADY_EXISTS":
                raise
            # Made meanwhile (or by a retried call): its labels decide whose it is.
        return self._record_of(ctx, ctx.clients.artifacts.get_repository(name=self._name(ctx)))

    def _delete(self, ctx: GcpContext, record: ResourceRecord) -> None:
        from google.api_core.exceptions import NotFound

        try:
            operation = ctx.clients.artifacts.delete_repository(
                name=record.data.get("name") or self._name(ctx), retry=retry()
            )
            operation.result(timeout=OPERATION_TIMEOUT)
        except NotFound:
            pass
