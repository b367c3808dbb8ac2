"""The AWS provisioner in the shape provisioners/registry.py's Provisioner names.

It turns the CLI's option values into an AwsProvisionConfig and the block store's generic
`save(name, fields)` into the aws-credentials fields the access-key step produces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from provisioners.aws.base import StepIds
from provisioners.aws.config import AwsNames, AwsProvisionConfig
from provisioners.plan import ResourceRecord
from provisioners.registry import CredentialsStore, Preflight
from push_pools.errors import InvalidInput

__all__ = ["AwsProvisioner"]


def _names(pairs: Sequence[str]) -> AwsNames:
    known = [f.name for f in dataclasses.fields(AwsNames)]
    chosen: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise InvalidInput(f"--resource-name '{pair}' is not of the form KEY=NAME")
        if key not in known:
            raise InvalidInput(
                f"unknown resource name {key}; --resource-name takes one of: {', '.join(known)}"
            )
        chosen[key] = value
    return AwsNames(**chosen)


class AwsProvisioner:
    cloud = "aws"

    def __init__(
        self,
        pool_name: str,
        values: Mapping[str, Any],
        *,
        records: Sequence[ResourceRecord] = (),
    ) -> None:
        from provisioners import aws

        # Where an earlier run provisioned, unless the user says otherwise now.
        pinned = next((r.data for r in records if r.step == StepIds.ACCOUNT), {})
        extra: dict[str, Any] = {}
        if values.get("log_retention_days") is not None:
            extra["log_retention_days"] = values["log_retention_days"]
        self.config = AwsProvisionConfig(
            pool_name=pool_name,
            region=values.get("region") or pinned.get("region"),
            profile=values.get("profile"),
            create_task_role=bool(values.get("create_task_role")),
            endpoint_url=values.get("endpoint_url") or pinned.get("endpoint_url"),
            names=_names(values.get("resource_name") or ()),
            **extra,
        )
        self.session = aws.aws_session(self.config)

    def preflight(self) -> Preflight:
        from provisioners import aws

        report = aws.preflight(self.config, session=self.session)
        report.raise_for_missing()
        return Preflight(report.account_id, report.caller_arn, report.region, report.note)

    def plan(self, recorder: Any, *, credentials: CredentialsStore) -> Any:
        from provisioners import aws

        def save(name: str, key_id: str, secret: str, region: str) -> None:
            credentials.save(
                name,
                {
                    "aws_access_key_id": key_id,
                    "aws_secret_access_key": secret,
                    "region_name": region,
                },
            )

        return aws.build_aws_plan(
            self.config,
            recorder,
            save_credentials=save,
            credentials_exist=credentials.exists,
            session=self.session,
        )

    def template_defaults(self, outputs: dict[str, Any]) -> dict[str, Any]:
        from provisioners import aws

        return aws.template_defaults(outputs, self.config)

    def credentials_block_name(self) -> str | None:
        return self.config.credentials_block_name
