"""The boto3 session, client settings, and the context object every AWS step receives."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisioners.aws.config import AwsProvisionConfig, InjectedFailure, ResolvedNames
from provisioners.aws.errors import NO_CREDENTIALS, translate_errors
from provisioners.plan import ResourceRecord
from push_pools.errors import InvalidInput

__all__ = [
    "AwsContext",
    "CallerIdentity",
    "CredentialsExist",
    "SaveCredentials",
    "aws_session",
    "client_config",
]

# The CLI's hooks into the block store: (block name, access key id, secret, region) and
# (block name) -> exists. The provisioner never sees how or where blocks are kept.
SaveCredentials = Callable[[str, str, str, str], None]
CredentialsExist = Callable[[str], bool]


def client_config() -> Any:
    """The one botocore Config every client uses: standard retries (throttling, 5xx, timeouts
    retried with backoff, 3 attempts) so no step carries its own retry loop."""
    from botocore.config import Config

    return Config(retries={"mode": "standard"}, user_agent_extra="push-pools")


def aws_session(config: AwsProvisionConfig) -> Any:
    """A boto3 Session for `config`'s profile and region, checked before anything runs.

    InvalidInput for an unknown profile, no region, a region AWS does not have, or no
    credentials anywhere in the standard chain.
    """
    import boto3
    import botocore.session
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    try:
        session = boto3.Session(profile_name=config.profile, region_name=config.region)
        credentials = session.get_credentials()
    except ProfileNotFound as exc:
        name = config.profile or os.environ.get("AWS_PROFILE", "")
        known = botocore.session.Session(profile=None).available_profiles
        hint = f"known profiles: {', '.join(sorted(known))}" if known else "no profiles are set up"
        raise InvalidInput(
            f"AWS profile {name!r} not found in ~/.aws/config or ~/.aws/credentials ({hint}); "
            "pass --profile with one of them or unset AWS_PROFILE"
        ) from exc
    except BotoCoreError as exc:
        # A broken config file or credential_process: the user's setup, so InvalidInput.
        raise InvalidInput(f"could not load AWS credentials: {exc}") from exc
    if credentials is None:
        raise InvalidInput(NO_CREDENTIALS)
    region = session.region_name
    if not region:
        raise InvalidInput(
            "no AWS region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), or set "
            "region in the AWS profile"
        )
    known_regions = _known_regions(session)
    if region not in known_regions:
        raise InvalidInput(
            f"AWS region {region!r} does not exist (or has no ECS); use a region code such as "
            "us-east-1, eu-west-1 or ap-southeast-2"
        )
    return session


def _known_regions(session: Any) -> set[str]:
    # botocore's endpoint data lists every region of every partition where ECS runs; checking
    # locally catches typos before any call (an unknown region fails with a DNS error much later).
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ecs", partition_name=partition))
    return regions


@dataclass(frozen=True)
class CallerIdentity:
    account_id: str
    arn: str
    user_id: str

    @property
    def partition(self) -> str:
        # "arn:aws-cn:sts::..." -> "aws-cn": every ARN we build must use the caller's partition.
        return self.arn.split(":")[1] if self.arn.count(":") >= 5 else "aws"


class AwsContext:
    """What steps share: config, names, lazily made clients, caller identity, outputs.

    `outputs` is filled by the Plan (records loaded, then each step's record).
    """

    def __init__(
        self,
        config: AwsProvisionConfig,
        session: Any,
        *,
        save_credentials: SaveCredentials,
        credentials_exist: CredentialsExist,
    ) -> None:
        self.config = config
        self.session = session
        self.region: str = session.region_name
        self.names: ResolvedNames = config.resolved_names
        self.tags: dict[str, str] = config.tags
        self.save_credentials = save_credentials
        self.credentials_exist = credentials_exist
        self.outputs: dict[str, ResourceRecord] = {}
        self._clients: dict[str, Any] = {}
        self._identity: CallerIdentity | None = None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self.config.endpoint_url, config=client_config()
            )
        return self._clients[service]

    @property
    def identity(self) -> CallerIdentity:
        if self._identity is None:
            with translate_errors():
                answer = self.client("sts").get_caller_identity()
            self._identity = CallerIdentity(
                account_id=answer["Account"], arn=answer["Arn"], user_id=answer["UserId"]
            )
        return self._identity

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        """An ARN in the caller's partition and account, e.g. arn("ecs", "cluster/x")."""
        identity = self.identity
        region = self.region if regional else ""
        return f"arn:{identity.partition}:{service}:{region}:{identity.account_id}:{resource}"

    def output(self, step_id: str, key: str, default: Any = None) -> Any:
        """`key` of an earlier step's record data, `default` when that step has no record."""
        record = self.outputs.get(step_id)
        return record.data.get(key, default) if record is not None else default

    def tag_list(self, key: str = "Key", value: str = "Value", *, name: str = "") -> list[Any]:
        """Our tags in the list shape most AWS APIs take ({"Key":..., "Value":...})."""
        tags = dict(self.tags)
        if name:
            tags["Name"] = name  # EC2's console column; harmless elsewhere
        return [{key: k, value: v} for k, v in tags.items()]

    def ec2_tag_filters(self) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{k}", "Values": [v]} for k, v in self.tags.items()]

    def maybe_fail(self, step_id: str) -> None:
        """The `fail_at_step` test hook (see AwsProvisionConfig)."""
        if self.config.fail_at_step == step_id:
            raise InjectedFailure(f"injected failure after creating step {step_id} (test hook)")
