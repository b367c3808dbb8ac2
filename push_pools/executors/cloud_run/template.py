"""The `cloud-run:push` work-pool type: the server runs each flow run as a Cloud Run job execution.

Imported by pool_types when a type is first looked up, so it is standard library only, like the
registry. Variable names are those of Prefect's Cloud Run (v2) worker where it has one (image,
cpu, memory, env, args, command, region, timeout, max_retries, service_account_name,
vpc_connector_name, credentials, keep_job, labels, name), so job variables users bring from
Prefect keep their meaning. Prefect's template has no variable for direct VPC egress; ours
(vpc_network, vpc_subnetwork, vpc_network_tags, vpc_egress) follow gcloud's flags of the same
meaning (--network, --subnet, --network-tags, --vpc-egress).
"""

from __future__ import annotations

from typing import Any

from push_pools import bundle_storage, pool_types

__all__ = [
    "DEFAULT_COMMAND",
    "DEFAULT_CPU",
    "DEFAULT_IMAGE",
    "DEFAULT_MEMORY",
    "DEFAULT_REGION",
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "POOL_TYPE",
    "default_template",
]

# A stock image: it has Python only. A code bundle deploy (the default for this pool) records
# python:<its version>-slim and the bootstrap command on the deployment, which installs
# push-pools at run start (deploy/stock_image.py); an image of one's own skips that.
DEFAULT_IMAGE = "python:3.12-slim"
DEFAULT_COMMAND = "python -m push_pools.engine"
DEFAULT_CPU = "1000m"
DEFAULT_MEMORY = "512Mi"
DEFAULT_REGION = "us-central1"
DEFAULT_TIMEOUT = 600
# Cloud Run's longest task timeout: 168 hours.
MAX_TIMEOUT = 604_800
MAX_RETRIES = 10

VARIABLES = (
    "image",
    "command",
    "args",
    "env",
    "env_from_secrets",
    "cpu",
    "memory",
    "project",
    "region",
    "timeout",
    "max_retries",
    "service_account_name",
    "vpc_connector_name",
    "vpc_network",
    "vpc_subnetwork",
    "vpc_network_tags",
    "vpc_egress",
    "labels",
    "name",
    "keep_job",
    "start_timeout_seconds",
    "credentials",
)


def _string_map(title: str, description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "type": "object",
        "additionalProperties": {"type": "string"},
        "default": {},
    }


def default_template() -> dict[str, Any]:
    """The default base job template, in Prefect's shape; a fresh dict on every call."""
    template: dict[str, Any] = {
        "job_configuration": {name: "{{ " + name + " }}" for name in VARIABLES},
        "variables": {
            "description": (
                "Settings for running each flow run as an execution of a Google Cloud Run job. "
                "The push-pools server starts the execution itself: no worker to deploy. Each "
                "deployment gets one Cloud Run job, created on its first run and reused by all "
                "its runs until the image, size, service account, network or labels change."
            ),
            "type": "object",
            "properties": {
                "image": {
                    "title": "Image Name",
                    "description": (
                        "Container image that runs the flow, e.g. "
                        "europe-west1-docker.pkg.dev/my-project/flows/etl:2024-06-01. It needs "
                        "Python, push-pools and the flow's dependencies; the default "
                        f"{DEFAULT_IMAGE!r} has Python only: a code bundle deploy runs it with a "
                        "bootstrap that installs push-pools."
                    ),
                    "type": "string",
                    "minLength": 1,
                    "default": DEFAULT_IMAGE,
                },
                "command": {
                    "title": "Command",
                    "description": (
                        "Command the container runs (its entrypoint), split like a shell "
                        "would split it. The run's id and the API address reach it as "
                        "environment variables; keep the default unless the image needs a "
                        "wrapper, e.g. `/opt/venv/bin/python -m push_pools.engine`."
                    ),
                    "type": "string",
                    "minLength": 1,
                    "default": DEFAULT_COMMAND,
                },
                "args": {
                    "title": "Args",
                    "description": (
                        "Arguments appended to the command, one string per argument. Passed "
                        "with each run, so changing them does not make a new job."
                    ),
                    "type": "array",
                    "items": {"type": "string"},
                    "default": [],
                },
                "env": _string_map(
                    "Environment Variables",
                    "Environment variables for the flow run's container, as NAME: value strings. "
                    "Passed with each run (not stored in the job) and merged name by name across "
                    "work pool, deployment and run. Anyone allowed run.executions.get can read "
                    "them: put secrets in env_from_secrets.",
                ),
                "env_from_secrets": {
                    "title": "Environment Variables from Secret Manager",
                    "description": (
                        "Environment variables Cloud Run reads from Secret Manager when the "
                        "container starts, as NAME: secret, where secret is a secret's name "
                        '("db-password", latest version), "name:version", or its full '
                        'resource name ("projects/P/secrets/S/versions/3"). The job\'s service '
                        "account needs roles/secretmanager.secretAccessor on each secret."
                    ),
                    "type": "object",
                    "additionalProperties": {"type": "string", "minLength": 1},
                    "default": {},
                },
                "cpu": {
                    "title": "CPU",
                    "description": (
                        'vCPUs for the container: "1", "2", "4", "6" or "8", or a fraction '
                        'of one between "80m" (0.08) and "1000m". More CPUs need more memory: '
                        "4 vCPU at least 2Gi, 6 and 8 vCPU at least 4Gi."
                    ),
                    "type": "string",
                    "default": DEFAULT_CPU,
                },
                "memory": {
                    "title": "Memory",
                    "description": (
                        'Memory for the container with its unit (M, Mi, G or Gi), e.g. "512Mi" '
                        'or "2Gi": at most 4Gi per vCPU (1 vCPU: 4Gi, 2: 8Gi, 4: 16Gi, 6: 24Gi, '
                        "8: 32Gi). A run that exceeds it is stopped by Cloud Run."
                    ),
                    "type": "string",
                    "pattern": r"^\d+(?:M|Mi|G|Gi)$",
                    "default": DEFAULT_MEMORY,
                },
                "project": {
                    "title": "Project",
                    "description": (
                        "Google Cloud project ID the job runs in. Leave it empty to use the "
                        "credentials block's project, then the service account's project, then "
                        "the server's application-default project."
                    ),
                    "type": "string",
                },
                "region": {
                    "title": "Region",
                    "description": "Region the Cloud Run job runs in, e.g. europe-west1.",
                    "type": "string",
                    "minLength": 1,
                    "default": DEFAULT_REGION,
                },
                "timeout": {
                    "title": "Job Timeout",
                    "description": (
                        "Seconds a run may take, at most 604800 (7 days). Cloud Run stops the "
                        "container when it is reached and the run is crashed saying so."
                    ),
                    "type": "integer",
                    "exclusiveMinimum": 0,
                    "maximum": MAX_TIMEOUT,
                    "default": DEFAULT_TIMEOUT,
                },
                "max_retries": {
                    "title": "Max Retries",
                    "description": (
                        "How many times Cloud Run starts the container again after it fails "
                        "(0-10). Keep 0 unless the flow can run twice safely: push-pools "
                        "retries flows itself (the flow's retries setting)."
                    ),
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_RETRIES,
                    "default": 0,
                },
                "service_account_name": {
                    "title": "Service Account Name",
                    "description": (
                        "Email of the service account the flow's code runs as (its Google "
                        "Cloud permissions), e.g. flows@my-project.iam.gserviceaccount.com. "
                        "Leave it empty for the project's default compute service account. "
                        "The credentials need iam.serviceAccounts.actAs on it."
                    ),
                    "type": "string",
                },
                "vpc_connector_name": {
                    "title": "VPC Connector Name",
                    "description": (
                        "Serverless VPC Access connector the container's traffic goes through, "
                        "as its name or projects/P/locations/R/connectors/NAME. Leave it empty "
                        "for none, or for direct VPC egress (vpc_network, vpc_subnetwork): "
                        "Cloud Run takes one or the other."
                    ),
                    "type": "string",
                },
                "vpc_network": {
                    "title": "VPC Network (direct VPC egress)",
                    "description": (
                        "VPC network the container's task joins directly, without a "
                        'connector, as its name ("default") or '
                        "projects/P/global/networks/NAME (a Shared VPC host project's "
                        "network). Leave it empty for no direct VPC egress. With only a "
                        "network, Cloud Run uses the subnetwork of the same name."
                    ),
                    "type": "string",
                },
                "vpc_subnetwork": {
                    "title": "VPC Subnetwork (direct VPC egress)",
                    "description": (
                        "Subnetwork in the job's region the task takes its IP address from, "
                        "as its name or projects/P/regions/REGION/subnetworks/NAME. With only "
                        "a subnetwork, Cloud Run finds its network."
                    ),
                    "type": "string",
                },
                "vpc_network_tags": {
                    "title": "Network Tags (direct VPC egress)",
                    "description": (
                        "Network tags on the task, so firewall rules can select its traffic; "
                        "needs vpc_network or vpc_subnetwork."
                    ),
                    "type": "array",
                    "items": {"type": "string"},
                    "default": [],
                },
                "vpc_egress": {
                    "title": "VPC Egress",
                    "description": (
                        "Which outbound traffic goes through the VPC (a connector or direct "
                        'VPC egress): "private-ranges-only" (Cloud Run\'s default) or '
                        '"all-traffic". Leave it empty for Cloud Run\'s default.'
                    ),
                    "type": "string",
                    "enum": ["", "all-traffic", "private-ranges-only"],
                },
                "labels": _string_map(
                    "Labels",
                    "Key: value labels added to the Cloud Run job, for cost allocation and "
                    "finding runs. Lowercase letters, digits, '_' and '-' only; push-pools adds "
                    "its own push-pools-* labels.",
                ),
                "name": {
                    "title": "Name",
                    "description": (
                        "Prefix of the Cloud Run job's name, made lowercase with '-' for other "
                        "characters and cut to 40; the rest is derived from the job's "
                        "settings. Leave it empty for pp-<pool>-<deployment>."
                    ),
                    "type": "string",
                },
                "keep_job": {
                    "title": "Keep Job After Completion",
                    "description": (
                        "Keep Cloud Run jobs that no run uses any more. Off by default: once a "
                        "deployment's settings change, the job of its old settings is deleted "
                        "when its last run ends, so a project never reaches Cloud Run's limit "
                        "of jobs per region. A deployment's current job is always kept."
                    ),
                    "type": "boolean",
                    "default": False,
                },
                "start_timeout_seconds": {
                    "title": "Start Timeout (seconds)",
                    "description": (
                        "A run whose flow has not started this many seconds after the server "
                        "picked it up (pulling the image included) is crashed and its "
                        "execution cancelled."
                    ),
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 86400,
                    "default": 600,
                },
                "credentials": {
                    "title": "GCP Credentials",
                    "description": (
                        "Name of a gcp-credentials block the server uses to call Cloud Run and "
                        "Cloud Logging. Leave it empty to use the server's application-default "
                        "credentials. The block stays on the server: it never reaches the job."
                    ),
                    "type": "string",
                    "block_type": "gcp-credentials",
                },
            },
        },
    }
    # Not a job_configuration field: the server reads the pool's value when storing bundles.
    template["variables"]["properties"][bundle_storage.VARIABLE] = bundle_storage.variable_schema()
    return template


def not_ready_reason(values: dict[str, Any]) -> str | None:
    """Why no Cloud Run job can be made from these job variables (PoolType.readiness_check):
    no project from the variables, a credentials block or application-default credentials."""
    import os
    from pathlib import Path

    if values.get("project") or values.get("credentials"):
        return None
    if any(
        os.environ.get(name)
        for name in ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS")
    ):
        return None
    gcloud = Path(os.environ.get("CLOUDSDK_CONFIG") or Path("~/.config/gcloud").expanduser())
    if (gcloud / "application_default_credentials.json").is_file():
        return None
    return (
        "no Google Cloud project: set the job variable 'project' or 'credentials' "
        "(work-pool update, or --provision-infra), or application-default credentials on "
        "the server"
    )


POOL_TYPE = pool_types.PoolType(
    name="cloud-run:push",
    description=(
        "Runs each flow run as a Google Cloud Run job execution, started by the push-pools "
        "server itself; no worker needed."
    ),
    default_template=default_template,
    executor="push_pools.executors.cloud_run.executor:CloudRunExecutor",
    is_push=True,
    job_variables_check="push_pools.executors.cloud_run.checks:validate_job_variables",
    readiness_check="push_pools.executors.cloud_run.template:not_ready_reason",
    credential_slots=("credentials",),
    start_timeout_variable="start_timeout_seconds",
    max_run_variable="timeout",
    keep_infrastructure_variable="keep_job",
)
