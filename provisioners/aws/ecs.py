"""ECS step: the cluster flow runs are launched on (Fargate and Fargate Spot capacity).

Step verbs follow provisioners/plan.py.
"""

from __future__ import annotations

from typing import Any

from provisioners.aws.base import AwsStep, StepIds, owned, tags_of
from provisioners.aws.errors import absent_on
from provisioners.aws.session import AwsContext
from provisioners.plan import ResourceRecord, StepCheck

__all__ = ["ClusterStep"]


class ClusterStep(AwsStep):
    id = StepIds.CLUSTER
    kind = "aws:ecs:cluster"

    def __init__(self, name: str) -> None:
        self.name = name
        self.title = f"ECS cluster {name}"

    def _find(self, ctx: AwsContext) -> dict[str, Any] | None:
        answer = ctx.client("ecs").describe_clusters(clusters=[self.name], include=["TAGS"])
        # A deleted cluster stays visible as INACTIVE for a while; for us it does not exist.
        active = [c for c in answer.get("clusters", []) if c.get("status") == "ACTIVE"]
        return active[0] if active else None

    def _record_of(self, ctx: AwsContext, cluster: dict[str, Any], created: bool) -> ResourceRecord:
        data = {"name": cluster["clusterName"], "arn": cluster["clusterArn"], "region": ctx.region}
        return self.record(cluster["clusterArn"], data, created=created)

    def _check(self, ctx: AwsContext) -> StepCheck:
        cluster = self._find(ctx)
        if cluster is None:
            return self.missing("Fargate and Fargate Spot capacity")
        created = owned(
            ctx, tags_of(cluster.get("tags")), f"ECS cluster {self.name}", adoptable=True
        )
        return self.found(self._record_of(ctx, cluster, created))

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        # CreateCluster returns the existing ACTIVE cluster of that name instead of failing, so
        # look first: an existing cluster must keep its own tags and ownership.
        cluster = self._find(ctx)
        if cluster is not None:
            created = owned(
                ctx, tags_of(cluster.get("tags")), f"ECS cluster {self.name}", adoptable=True
            )
            return self._record_of(ctx, cluster, created)
        cluster = ctx.client("ecs").create_cluster(
            clusterName=self.name,
            tags=ctx.tag_list("key", "value"),
            capacityProviders=["FARGATE", "FARGATE_SPOT"],
            defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
        )["cluster"]
        return self._record_of(ctx, cluster, created=True)

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        absent_on(
            {"ClusterNotFoundException"},
            ctx.client("ecs").delete_cluster,
            cluster=record.identifier,
        )
