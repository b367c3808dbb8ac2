"""What one Cloud Run flow run needs, parsed from the rendered job configuration; and its names.

Pure: no Google calls and no Google imports, so the rules (job naming, what goes in the job and
what in each run's overrides) are easy to read and to test.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from push_pools.errors import InvalidInput
from push_pools.executors import job_values
from push_pools.executors.cloud_run import checks, template
from push_pools.executors.cloud_run.network import VpcSettings

ID_PREFIX = "cloud-run"
INFRASTRUCTURE_ID_ENV = "PUSH_POOLS_INFRASTRUCTURE_ID"
LABEL_PREFIX = "push-pools-"
MANAGED_BY_LABEL = "managed-by"
POOL_LABEL = LABEL_PREFIX + "pool"
DEPLOYMENT_LABEL = LABEL_PREFIX + "deployment"
KEEP_LABEL = LABEL_PREFIX + "keep"
NO_DEPLOYMENT = "none"
CONTAINER_NAME = "flow-run"
_NOT_ID_CHARS = re.compile(r"[^a-z0-9]+")
_PREFIX_LIMIT = 40
_DIGEST_LENGTH = 12


@dataclass(frozen=True)
class BlockCredentials:
    """The non-empty fields of a resolved gcp-credentials block (see push_pools.blocks)."""

    service_account_info: dict[str, Any] | None = None
    project: str | None = None

    def fingerprint(self) -> str:
        """Tells credentials apart without keeping the key itself as a dictionary key."""
        raw = json.dumps([self.service_account_info, self.project], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CloudRunJob:
    """One run's Cloud Run settings; see template for what each variable means."""

    image: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    env_from_secrets: dict[str, tuple[str, str]]
    cpu: str
    memory: str
    project: str | None
    region: str
    timeout: int
    max_retries: int
    service_account: str | None
    vpc: VpcSettings
    labels: dict[str, str]
    name_prefix: str | None
    keep_job: bool
    credentials: BlockCredentials | None

    @classmethod
    def from_configuration(cls, config: dict[str, Any]) -> CloudRunJob:
        """Parse a rendered job configuration; InvalidInput naming the variable otherwise."""
        if not isinstance(config, dict):
            raise InvalidInput(f"the Cloud Run job configuration must be an object, got {config!r}")
        if "job_body" in config:
            # Silently ignoring it would run the default image with default settings.
            raise InvalidInput(
                "the work pool's job configuration has Prefect's Cloud Run worker layout "
                "(job_body), which the cloud-run:push executor does not read; start from "
                "push-pools' own cloud-run:push default template, which keeps Prefect's "
                "variable names (image, cpu, memory, region, ...)"
            )
        values = {k: v for k, v in config.items() if v is not None}
        # The server's deploy-time rules, again: a run whose variables reached us some other
        # way fails with the same message, before any Google call.
        checks.validate_job_variables(values)
        secrets = {}
        for name, reference in job_values.string_map(values, "env_from_secrets").items():
            parsed = checks.secret_reference(reference)
            if parsed is None:  # pragma: no cover - validate_job_variables refused it
                raise InvalidInput(f"env_from_secrets {name}: {reference!r} is not a secret")
            secrets[name] = parsed
        return cls(
            image=job_values.text(values, "image", template.DEFAULT_IMAGE),
            command=job_values.command(values.get("command"), template.DEFAULT_COMMAND),
            args=_string_list(values, "args"),
            env=job_values.string_map(values, "env"),
            env_from_secrets=secrets,
            cpu=job_values.text(values, "cpu", template.DEFAULT_CPU),
            memory=job_values.text(values, "memory", template.DEFAULT_MEMORY),
            project=job_values.text(values, "project", "") or None,
            region=job_values.text(values, "region", template.DEFAULT_REGION),
            timeout=_integer(values, "timeout", template.DEFAULT_TIMEOUT, 1, template.MAX_TIMEOUT),
            max_retries=_integer(values, "max_retries", 0, 0, template.MAX_RETRIES),
            service_account=job_values.text(values, "service_account_name", "") or None,
            vpc=VpcSettings(
                connector=job_values.text(values, "vpc_connector_name", "") or None,
                network=job_values.text(values, "vpc_network", "") or None,
                subnetwork=job_values.text(values, "vpc_subnetwork", "") or None,
                tags=tuple(_string_list(values, "vpc_network_tags")),
                egress=job_values.text(values, "vpc_egress", "") or None,
            ),
            labels=job_values.string_map(values, "labels"),
            name_prefix=job_values.text(values, "name", "") or None,
            keep_job=job_values.flag(values, "keep_job", False),
            credentials=_credentials(values.get("credentials")),
        )

    # ------------------------------------------------------------------ the job

    def job_spec(self, *, pool_name: str, deployment_id: str | None) -> dict[str, Any]:
        """The Cloud Run Job (run_v2.Job fields) shared by all runs with these settings.

        Nothing per run goes here (env, args, timeout and the run's token travel as run_job
        overrides), so a deployment's runs share one job.
        """
        resources = {"limits": {"cpu": self.cpu, "memory": self.memory}}
        container: dict[str, Any] = {
            "name": CONTAINER_NAME,
            "image": self.image,
            "command": self.command,
            "resources": resources,
        }
        if self.env_from_secrets:
            container["env"] = [
                {
                    "name": name,
                    "value_source": {"secret_key_ref": {"secret": secret, "version": version}},
                }
                for name, (secret, version) in sorted(self.env_from_secrets.items())
            ]
        # No timeout: each run passes its own, so changing it makes no new job.
        task: dict[str, Any] = {"containers": [container], "max_retries": self.max_retries}
        if self.service_account:
            task["service_account"] = self.service_account
        vpc_access = self.vpc.vpc_access()
        if vpc_access is not None:
            task["vpc_access"] = vpc_access
        labels = dict(self.labels)
        labels[MANAGED_BY_LABEL] = "push-pools"
        labels.update(family_labels(pool_name, deployment_id))
        if self.keep_job:
            labels[KEEP_LABEL] = "true"
        return {
            "labels": labels,
            "template": {"task_count": 1, "parallelism": 1, "template": task},
        }

    def job_id(self, spec: dict[str, Any], *, pool_name: str, deployment_id: str | None) -> str:
        """The job's id: a readable prefix and a hash of its spec.

        Equal settings map to one job (found again by any server, no cache needed); any change
        to the spec gets a job of its own.
        """
        canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:_DIGEST_LENGTH]
        if self.name_prefix:
            prefix = _slug(self.name_prefix)
        else:
            deployment_part = (deployment_id or NO_DEPLOYMENT).replace("-", "")[:8]
            prefix = _slug(f"pp-{_slug(pool_name or 'pool')[:20]}-{deployment_part}")
        if not prefix[:1].isalpha():
            prefix = _slug("pp-" + prefix)
        return f"{prefix[:_PREFIX_LIMIT].rstrip('-')}-{digest}"

    # ------------------------------------------------------------------ each run

    def run_env(self, engine_env: dict[str, str], infrastructure_id: str) -> dict[str, str]:
        """The container's per-run environment: the job's env, then the engine's, which wins."""
        env = dict(self.env)
        env.update(engine_env)
        env[INFRASTRUCTURE_ID_ENV] = infrastructure_id
        return dict(sorted(env.items()))


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class ExecutionRef:
    """What an infrastructure id says: the job, and the name the run was started under."""

    project: str
    region: str
    job_id: str
    name: str

    @property
    def infrastructure_id(self) -> str:
        return f"{ID_PREFIX}:{self.project}:{self.region}:{self.job_id}:{self.name}"

    @property
    def location(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    @property
    def job_name(self) -> str:
        return f"{self.location}/jobs/{self.job_id}"


def parse_infrastructure_id(infrastructure_id: str) -> ExecutionRef | None:
    """The ExecutionRef of `cloud-run:<project>:<region>:<job id>:<name>`; None otherwise."""
    if not isinstance(infrastructure_id, str):
        return None
    parts = infrastructure_id.split(":", 4)
    if len(parts) != 5 or parts[0] != ID_PREFIX or not all(parts[1:]):
        return None
    return ExecutionRef(project=parts[1], region=parts[2], job_id=parts[3], name=parts[4])


def family_labels(pool_name: str, deployment_id: str | None) -> dict[str, str]:
    """The labels every job of one deployment on one pool carries, whatever its settings."""
    return {
        POOL_LABEL: _label_value(pool_name or "pool"),
        DEPLOYMENT_LABEL: _label_value(deployment_id or NO_DEPLOYMENT),
    }


def _slug(text: str) -> str:
    return _NOT_ID_CHARS.sub("-", text.lower()).strip("-") or "pp"


def _label_value(text: str) -> str:
    return _slug(text)[:63].rstrip("-")


# --------------------------------------------------------------------------- parsing helpers


def _integer(values: dict[str, Any], name: str, default: int, least: int, most: int) -> int:
    value = values.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise InvalidInput(
            f"job variable '{name}' must be an integer from {least} to {most}, got {value!r}"
        )
    return value


def _string_list(values: dict[str, Any], name: str) -> list[str]:
    value = values.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"job variable '{name}' must be a list of strings, got {value!r}")
    return list(value)


def _credentials(value: Any) -> BlockCredentials | None:
    """The resolved gcp-credentials block; None (application-default credentials) when unset."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        # The dispatcher resolves the block into the slot; a bare name means nobody did.
        raise InvalidInput(
            f"the credentials block {value!r} was not resolved; the cloud-run:push executor "
            "takes its credentials from the server's dispatcher"
        )
    if not isinstance(value, dict):
        raise InvalidInput("job variable 'credentials' must name a gcp-credentials block")
    info = value.get("service_account_info") or None
    if info is not None and not isinstance(info, dict):
        raise InvalidInput(
            "the gcp-credentials block's service_account_info must be the JSON object of a "
            "service-account key file"
        )
    project = value.get("project") or None
    return BlockCredentials(
        service_account_info=info, project=str(project) if project is not None else None
    )
