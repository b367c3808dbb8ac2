"""What an AWS provisioning run is asked to do: the pool, the account, the names, the options.

Stdlib and push_pools.errors only, so the CLI can build and validate a config (and report a bad
pool name) without importing boto3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

from push_pools.errors import InvalidInput

__all__ = [
    "LOG_RETENTION_DAYS",
    "MANAGED_BY",
    "MANAGED_BY_TAG",
    "POOL_NAME_RULE",
    "POOL_TAG",
    "AwsNames",
    "AwsProvisionConfig",
    "InjectedFailure",
    "ResolvedNames",
]

# Ownership tags on everything we create: teardown and re-runs recognise our resources by them.
POOL_TAG = "push-pools:pool"
MANAGED_BY_TAG = "push-pools:managed-by"
MANAGED_BY = "push-pools"

# The only values CloudWatch Logs accepts for retentionInDays.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# The pool name becomes part of IAM, ECS, ECR, CloudWatch and EC2 names. ECR is the strictest
# (lowercase, single separators) and IAM role names the shortest (64 characters, of which
# "push-pools-" and "-execution" take 21), so one rule that satisfies all of them.
_POOL_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,39}", re.ASCII)
POOL_NAME_RULE = (
    "1 to 40 characters: lowercase letters, digits and single hyphens, starting and ending "
    "with a letter or digit"
)

# Per-resource rules for name overrides, from each service's documented constraints.
_IAM_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)
_NAME_RULES: dict[str, tuple[re.Pattern[str], int, str]] = {
    "user": (_IAM_NAME, 64, "IAM user names: letters, digits and +=,.@_- , at most 64"),
    "policy": (_IAM_NAME, 128, "IAM policy names: letters, digits and +=,.@_- , at most 128"),
    "execution_role": (_IAM_NAME, 64, "IAM role names: letters, digits and +=,.@_- , at most 64"),
    "task_role": (_IAM_NAME, 64, "IAM role names: letters, digits and +=,.@_- , at most 64"),
    "cluster": (
        re.compile(r"[A-Za-z0-9_-]+"),
        255,
        "ECS cluster names: letters, digits, hyphens and underscores, at most 255",
    ),
    "log_group": (
        re.compile(r"[.\-_/#A-Za-z0-9]+"),
        512,
        "CloudWatch log group names: letters, digits and ._-/# , at most 512",
    ),
    "repository": (
        re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*"),
        256,
        "ECR repository names: lowercase letters and digits separated by single . _ - or /, "
        "2 to 256 characters",
    ),
    "security_group": (
        re.compile(r"(?!sg-)[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+"),
        255,
        "security group names: at most 255 of letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*, "
        "not starting with 'sg-'",
    ),
    "vpc": (re.compile(r"[^\x00-\x1f]+"), 255, "VPC Name tags: at most 255 printable characters"),
    "bucket": (
        # S3's general-purpose bucket rules: no IP-address look, no "..", reserved prefixes
        # and suffixes refused.
        re.compile(
            r"(?!xn--|sthree-|amzn-s3-demo-)(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)"
            r"[a-z0-9][a-z0-9.-]*[a-z0-9]"
            r"(?<!-s3alias)(?<!--ol-s3)(?<!\.mrap)(?<!--x-s3)(?<!--table-s3)"
        ),
        63,
        "S3 bucket names: 3 to 63 lowercase letters, digits, dots and hyphens, starting and "
        "ending with a letter or digit, not shaped like an IP address",
    ),
}


class InjectedFailure(RuntimeError):
    """Raised by the `fail_at_step` test hook: a crash between a cloud call and its record."""


@dataclass(frozen=True)
class ResolvedNames:
    """The name of every resource, after overrides."""

    user: str
    policy: str
    execution_role: str
    task_role: str
    cluster: str
    log_group: str
    repository: str
    security_group: str
    vpc: str
    # None: derived when the account is known (provisioners/aws/s3.py's default_bucket_name).
    bucket: str | None


@dataclass(frozen=True)
class AwsNames:
    """Overrides for derived names; None keeps the name derived from the pool name.

    An override that names an existing cluster, log group, repository, role or security group
    not created by push-pools adopts it: used as is, never changed, never deleted.
    """

    user: str | None = None
    policy: str | None = None
    execution_role: str | None = None
    task_role: str | None = None
    cluster: str | None = None
    log_group: str | None = None
    repository: str | None = None
    security_group: str | None = None
    vpc: str | None = None  # the Name tag of a VPC we create when there is no default VPC
    bucket: str | None = None  # the code-bundle bucket; default: provisioners/aws/s3.py

    def resolve(self, pool: str) -> ResolvedNames:
        base = f"push-pools-{pool}"
        derived = ResolvedNames(
            user=base,
            policy=f"{base}-control-plane",
            execution_role=f"{base}-execution",
            task_role=f"{base}-task",
            cluster=base,
            log_group=f"/push-pools/{pool}",
            repository=base,
            security_group=base,
            vpc=base,
            bucket=None,
        )
        chosen = {f.name: getattr(self, f.name) or getattr(derived, f.name) for f in fields(self)}
        return ResolvedNames(**chosen)

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            pattern, limit, rule = _NAME_RULES[f.name]
            minimum = {"repository": 2, "bucket": 3}.get(f.name, 1)
            if not (minimum <= len(value) <= limit and pattern.fullmatch(value)):
                raise InvalidInput(f"invalid {f.name.replace('_', ' ')} name {value!r}: {rule}")


@dataclass(frozen=True)
class AwsProvisionConfig:
    """One provisioning run for an `ecs:push` pool.

    `region` and `profile` None: taken from the environment / AWS config as boto3 does.
    `credentials_block_name` empty: "<pool>-aws-credentials".
    `endpoint_url`: one endpoint for every AWS service (tests point it at moto).
    `fail_at_step`: test hook; that step's create raises InjectedFailure right after its cloud
    calls succeeded, before the Plan records it (a crash in the worst place), so tests can prove
    a re-run adopts instead of duplicating.
    """

    pool_name: str
    region: str | None = None
    profile: str | None = None
    names: AwsNames = field(default_factory=AwsNames)
    create_task_role: bool = False
    log_retention_days: int = 30
    credentials_block_name: str = ""
    endpoint_url: str | None = None
    fail_at_step: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pool_name, str) or not _POOL_NAME.fullmatch(self.pool_name):
            raise InvalidInput(
                f"pool name {self.pool_name!r} cannot be used for AWS resource names: "
                f"{POOL_NAME_RULE} (e.g. 'ecs-pool-1')"
            )
        self.names.validate()
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise InvalidInput(
                f"log retention of {self.log_retention_days} days is not accepted by CloudWatch "
                f"Logs; choose one of {', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        if not self.credentials_block_name:
            # A frozen dataclass: setting the derived default is the one write allowed here.
            object.__setattr__(self, "credentials_block_name", f"{self.pool_name}-aws-credentials")

    @property
    def resolved_names(self) -> ResolvedNames:
        return self.names.resolve(self.pool_name)

    @property
    def tags(self) -> dict[str, str]:
        return {POOL_TAG: self.pool_name, MANAGED_BY_TAG: MANAGED_BY}
