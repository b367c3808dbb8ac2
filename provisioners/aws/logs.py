"""CloudWatch Logs step: the log group flow-run containers write to, with a retention period.

Step verbs follow provisioners/plan.py.
"""

from __future__ import annotations

from typing import Any

from provisioners.aws.base import AwsStep, StepIds, owned, tags_of
from provisioners.aws.errors import absent_on
from provisioners.aws.session import AwsContext
from provisioners.plan import ResourceRecord, StepCheck

__all__ = ["LogGroupStep"]


class LogGroupStep(AwsStep):
    id = StepIds.LOG_GROUP
    kind = "aws:logs:log-group"

    def __init__(self, name: str, retention_days: int) -> None:
        self.name = name
        self.retention_days = retention_days
        self.title = f"CloudWatch log group {name} ({retention_days} days retention)"

    def _find(self, ctx: AwsContext) -> dict[str, Any] | None:
        logs = ctx.client("logs")
        for page in logs.get_paginator("describe_log_groups").paginate(
            logGroupNamePrefix=self.name
        ):
            for group in page.get("logGroups", []):
                if group["logGroupName"] == self.name:
                    return dict(group)
        return None

    @staticmethod
    def _arn(group: dict[str, Any]) -> str:
        # `arn` ends in ":*" (the streams); tagging APIs want the group's own ARN.
        return str(group.get("logGroupArn") or group["arn"].removesuffix(":*"))

    def _record_of(self, ctx: AwsContext, group: dict[str, Any], created: bool) -> ResourceRecord:
        arn = self._arn(group)
        data = {"name": self.name, "arn": arn, "region": ctx.region}
        return self.record(arn, data, created=created)

    def _check(self, ctx: AwsContext) -> StepCheck:
        group = self._find(ctx)
        if group is None:
            return self.missing(f"logs kept {self.retention_days} days")
        tags = ctx.client("logs").list_tags_for_resource(resourceArn=self._arn(group))["tags"]
        created = owned(ctx, tags_of(tags), f"log group {self.name}", adoptable=True)
        drift = []
        if group.get("retentionInDays") != self.retention_days:
            drift.append(f"retention {group.get('retentionInDays', 'never expire')} days")
        return self.found(self._record_of(ctx, group, created), drift)

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        logs = ctx.client("logs")
        absent_on(
            {"ResourceAlreadyExistsException"},
            logs.create_log_group,
            logGroupName=self.name,
            tags=ctx.tags,
        )
        logs.put_retention_policy(logGroupName=self.name, retentionInDays=self.retention_days)
        group = self._find(ctx)
        if group is None:  # just created: only an eventual-consistency gap can cause this
            group = {"arn": ctx.arn("logs", f"log-group:{self.name}")}
        return self._record_of(ctx, group, created=True)

    def _update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        ctx.client("logs").put_retention_policy(
            logGroupName=self.name, retentionInDays=self.retention_days
        )
        return record

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        absent_on(
            {"ResourceNotFoundException"},
            ctx.client("logs").delete_log_group,
            logGroupName=record.data.get("name", self.name),
        )
