"""Links to a cloud provider's console for infrastructure push-pools names.

Read from the ids' text alone (the formats the executors write, see executors/*/job.py), so the
UI imports no executor or cloud SDK. An ECS id names the region, cluster and the task's
startedBy, not its ARN, so it links to the cluster's tasks; a task ARN links to the task itself.
"""

from __future__ import annotations

import re
from urllib.parse import quote

_TASK_ARN = re.compile(r"^arn:aws[\w-]*:ecs:([^:]+):\d*:task/([^/]+)/([^/]+)$")


def _q(part: str) -> str:
    return quote(part, safe="")


def ecs_task(region: str, cluster: str, task_id: str | None = None) -> str:
    base = f"https://{_q(region)}.console.aws.amazon.com/ecs/v2/clusters/{_q(cluster)}"
    if task_id:
        return f"{base}/tasks/{_q(task_id)}/configuration?region={_q(region)}"
    return f"{base}/tasks?region={_q(region)}"


def cloud_run_job(project: str, region: str, job: str) -> str:
    return (
        f"https://console.cloud.google.com/run/jobs/details/{_q(region)}/{_q(job)}/executions"
        f"?project={_q(project)}"
    )


def azure_resource(resource_id: str) -> str:
    return f"https://portal.azure.com/#@/resource{resource_id}/overview"


def aci_group(subscription: str, resource_group: str, name: str) -> str:
    return azure_resource(
        f"/subscriptions/{_q(subscription)}/resourceGroups/{_q(resource_group)}"
        f"/providers/Microsoft.ContainerInstance/containerGroups/{_q(name)}"
    )


def for_infrastructure(infrastructure_id: str | None) -> str | None:
    """The console page of a run's infrastructure; None where there is none (a pid, a local
    container) or the id is not one push-pools writes."""
    if not infrastructure_id:
        return None
    arn = _TASK_ARN.match(infrastructure_id)
    if arn:
        return ecs_task(arn.group(1), arn.group(2), arn.group(3))
    kind, _, rest = infrastructure_id.partition(":")
    if kind == "ecs":
        parts = rest.split(":", 2)
        if len(parts) == 3 and all(parts):
            return ecs_task(parts[0], parts[1])
    elif kind == "cloud-run":
        parts = rest.split(":", 3)
        if len(parts) == 4 and all(parts):
            return cloud_run_job(parts[0], parts[1], parts[2])
    elif kind == "aci":
        parts = rest.split(":", 2)
        if len(parts) == 3 and all(parts):
            return aci_group(*parts)
    return None


_ARN = re.compile(r"^arn:aws[\w-]*:([^:]+):([^:]*):([^:]*):(.+)$")
_GCP = "https://console.cloud.google.com"


def _aws(arn: str) -> str | None:
    match = _ARN.match(arn)
    if match is None:
        return None
    service, region, account, resource = match.groups()
    kind, _, name = resource.partition("/")
    if service == "iam" and kind in ("role", "user"):
        return f"https://console.aws.amazon.com/iam/home#/{kind}s/details/{_q(name)}"
    if service == "iam" and kind == "policy":
        return f"https://console.aws.amazon.com/iam/home#/policies/details/{_q(arn)}"
    if service == "s3" and not region and not account and "/" not in resource:
        # A bucket's ARN names neither region nor account; the console finds it by name.
        return f"https://s3.console.aws.amazon.com/s3/buckets/{_q(resource)}"
    if not region:
        return None
    home = f"https://{_q(region)}.console.aws.amazon.com"
    if service == "ecs" and kind == "cluster":
        return f"{home}/ecs/v2/clusters/{_q(name)}?region={_q(region)}"
    if service == "ecr" and kind == "repository":
        return f"{home}/ecr/repositories/private/{_q(account)}/{_q(name)}?region={_q(region)}"
    if service == "logs" and resource.startswith("log-group:"):
        group = resource.removeprefix("log-group:").removesuffix(":*")
        # The console wants the group's '/' as '$252F' (escaped twice) in its fragment.
        escaped = quote(quote(group, safe=""), safe="").replace("%", "$")
        return f"{home}/cloudwatch/home?region={_q(region)}#logsV2:log-groups/log-group/{escaped}"
    if service == "ec2" and kind == "vpc":
        return f"{home}/vpcconsole/home?region={_q(region)}#VpcDetails:VpcId={_q(name)}"
    if service == "ec2" and kind == "security-group":
        return f"{home}/ec2/home?region={_q(region)}#SecurityGroup:groupId={_q(name)}"
    return None


def _gcp(name: str) -> str | None:
    parts = name.split("/")
    if len(parts) < 2 or parts[0] != "projects" or not parts[1]:
        return None
    project = _q(parts[1])
    if len(parts) == 2:
        return f"{_GCP}/home/dashboard?project={project}"
    if parts[2] == "services":
        return f"{_GCP}/apis/dashboard?project={project}"
    if len(parts) == 4 and parts[1] == "_" and parts[2] == "buckets":
        return f"{_GCP}/storage/browser/{_q(parts[3])}"
    if parts[2] == "serviceAccounts":
        return f"{_GCP}/iam-admin/serviceaccounts?project={project}"
    if len(parts) == 6 and parts[2] == "locations" and parts[4] == "repositories":
        return f"{_GCP}/artifacts/docker/{project}/{_q(parts[3])}/{_q(parts[5])}?project={project}"
    return None


def for_record(identifier: str) -> str | None:
    """The console page of a provisioned resource, from its record's identifier (an ARN, a
    Google resource name or an Azure resource id); None for what has no page of its own."""
    if identifier.startswith("/subscriptions/"):
        return azure_resource(identifier)
    if identifier.startswith("arn:"):
        return _aws(identifier)
    if identifier.startswith("projects/"):
        return _gcp(identifier)
    return None
