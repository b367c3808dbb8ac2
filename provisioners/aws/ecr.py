"""ECR step: the image repository deployments push flow images to.

Step verbs follow provisioners/plan.py. Teardown deletes the repository with its images: it was
made for this pool, and the teardown is the CLI's confirmed, destructive command.
"""

from __future__ import annotations

from typing import Any

from provisioners.aws.base import AwsStep, StepIds, owned, tags_of
from provisioners.aws.errors import absent_on
from provisioners.aws.session import AwsContext
from provisioners.plan import ResourceRecord, StepCheck

__all__ = ["RepositoryStep"]

GONE = frozenset({"RepositoryNotFoundException"})


class RepositoryStep(AwsStep):
    id = StepIds.REPOSITORY
    kind = "aws:ecr:repository"

    def __init__(self, name: str) -> None:
        self.name = name
        self.title = f"ECR repository {name}"

    def _find(self, ctx: AwsContext) -> dict[str, Any] | None:
        found = absent_on(
            GONE, ctx.client("ecr").describe_repositories, repositoryNames=[self.name]
        )
        return dict(found["repositories"][0]) if found and found["repositories"] else None

    def _record_of(self, ctx: AwsContext, repo: dict[str, Any], created: bool) -> ResourceRecord:
        data = {
            "name": repo["repositoryName"],
            "arn": repo["repositoryArn"],
            "uri": repo["repositoryUri"],
            "region": ctx.region,
        }
        return self.record(repo["repositoryArn"], data, created=created)

    def _owned(self, ctx: AwsContext, repo: dict[str, Any]) -> bool:
        tags = ctx.client("ecr").list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
        return owned(ctx, tags_of(tags), f"ECR repository {self.name}", adoptable=True)

    def _check(self, ctx: AwsContext) -> StepCheck:
        repo = self._find(ctx)
        if repo is None:
            return self.missing("images scanned on push")
        return self.found(self._record_of(ctx, repo, self._owned(ctx, repo)))

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        made = absent_on(
            {"RepositoryAlreadyExistsException"},
            ctx.client("ecr").create_repository,
            repositoryName=self.name,
            tags=ctx.tag_list(),
            imageScanningConfiguration={"scanOnPush": True},
        )
        if made is None:  # created meanwhile: the same ownership rules as check
            repo = ctx.client("ecr").describe_repositories(repositoryNames=[self.name])
            repo = repo["repositories"][0]
            return self._record_of(ctx, repo, self._owned(ctx, repo))
        return self._record_of(ctx, made["repository"], created=True)

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        absent_on(
            GONE,
            ctx.client("ecr").delete_repository,
            repositoryName=record.data.get("name", self.name),
            force=True,
        )
