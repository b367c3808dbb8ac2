"""Which pool types can `--provision-infra`, and the one shape the CLI drives them through.

A new cloud adds one adapter here (and its provisioner package); the CLI does not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from push_pools.errors import InvalidInput


@dataclass(frozen=True)
class ProvisionOptions:
    """What the user chose on the command line (None: the cloud's own default)."""

    pool_name: str
    region: str | None = None
    profile: str | None = None
    create_task_role: bool = False
    log_retention_days: int | None = None
    endpoint_url: str | None = None
    # Resource name overrides, e.g. {"cluster": "shared-cluster"}; keys are the cloud's own.
    names: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Preflight:
    account: str
    caller: str
    region: str
    note: str


class Provisioner(Protocol):
    cloud: str

    def preflight(self) -> Preflight:
        """Who and where we are; raises when permissions are missing. Read-only."""

    def plan(self, recorder: Any, *, save_credentials: Any, credentials_exist: Any) -> Any:
        """The provisioners.plan.Plan for this pool."""

    def template_defaults(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """Job-variable defaults for the pool's base job template, from the applied records."""

    def credentials_block_name(self) -> str: ...


class AwsProvisioner:
    cloud = "aws"

    def __init__(self, options: ProvisionOptions) -> None:
        import dataclasses

        from provisioners import aws

        extra: dict[str, Any] = {}
        if options.log_retention_days is not None:
            extra["log_retention_days"] = options.log_retention_days
        if options.names:
            known = [f.name for f in dataclasses.fields(aws.AwsNames)]
            unknown = [key for key, _ in options.names if key not in known]
            if unknown:
                raise InvalidInput(
                    f"unknown resource name(s) {', '.join(unknown)}; "
                    f"--resource-name takes one of: {', '.join(known)}"
                )
            extra["names"] = aws.AwsNames(**dict(options.names))
        self.config = aws.AwsProvisionConfig(
            pool_name=options.pool_name,
            region=options.region,
            profile=options.profile,
            create_task_role=options.create_task_role,
            endpoint_url=options.endpoint_url,
            **extra,
        )
        self.session = aws.aws_session(self.config)

    def preflight(self) -> Preflight:
        from provisioners import aws

        report = aws.preflight(self.config, session=self.session)
        report.raise_for_missing()
        return Preflight(report.account_id, report.caller_arn, report.region, report.note)

    def plan(self, recorder: Any, *, save_credentials: Any, credentials_exist: Any) -> Any:
        from provisioners import aws

        return aws.build_aws_plan(
            self.config,
            recorder,
            save_credentials=save_credentials,
            credentials_exist=credentials_exist,
            session=self.session,
        )

    def template_defaults(self, outputs: dict[str, Any]) -> dict[str, Any]:
        from provisioners import aws

        return aws.template_defaults(outputs, self.config)

    def credentials_block_name(self) -> str:
        return self.config.credentials_block_name


_PROVISIONERS: dict[str, type] = {"ecs:push": AwsProvisioner}


def provisioner_for(pool_type: str, options: ProvisionOptions) -> Provisioner:
    kind = _PROVISIONERS.get(pool_type)
    if kind is None:
        raise InvalidInput(
            f"work pool type '{pool_type}' has no --provision-infra; types that do: "
            f"{', '.join(sorted(_PROVISIONERS))}"
        )
    return kind(options)  # type: ignore[no-any-return]
