"""IAM policy documents, as plain data so tests and the preview can show exactly what is granted.

Least privilege: every statement names our cluster, roles, task-definition families, log group
or repository wherever the service supports resource-level permissions (the Service
Authorization Reference). The few `"Resource": "*"` statements are actions AWS cannot scope
(ECR's GetAuthorizationToken; describing, listing and deregistering task definitions), and
ListTasks, still pinned to our cluster by condition. tests/test_iam_policy_lint.py runs
parliament over every document the provisioner writes and lists each accepted finding.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EXECUTION_MANAGED_POLICY",
    "control_plane_policy",
    "execution_logs_policy",
    "task_trust_policy",
]

VERSION = "2012-10-17"
EXECUTION_MANAGED_POLICY = "service-role/AmazonECSTaskExecutionRolePolicy"


def task_trust_policy(*, partition: str, region: str, account_id: str) -> dict[str, Any]:
    """Only ECS tasks of this account and region may assume the role (confused-deputy guard)."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {"aws:SourceArn": f"arn:{partition}:ecs:{region}:{account_id}:*"},
                },
            }
        ],
    }


def execution_logs_policy(*, log_group_arn: str) -> dict[str, Any]:
    """The execution role's inline grant: write flow-run logs to our log group only."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "WritePoolLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [f"{log_group_arn}:*"],
            }
        ],
    }


def control_plane_policy(
    *,
    partition: str,
    region: str,
    account_id: str,
    cluster_arn: str,
    cluster_name: str,
    pass_role_arns: list[str],
    log_group_arn: str,
    repository_arn: str,
    bundle_objects_arn: str,
    family_prefix: str,
) -> dict[str, Any]:
    """What the push-pools server needs to run, watch and stop flow runs on our cluster.

    `family_prefix` begins every task-definition family the executor registers for this pool
    (push_pools.executors.ecs.job.family_prefix). `bundle_objects_arn` is the bucket's
    bundle prefix, `arn:aws:s3:::<bucket>/<prefix>/*` (push_pools/bundle_storage.py).
    """
    ecs = f"arn:{partition}:ecs:{region}:{account_id}"
    on_our_cluster = {"ArnEquals": {"ecs:cluster": cluster_arn}}
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "TaskDefinitions",
                # No resource-level permissions for these: they take "*" only.
                "Effect": "Allow",
                "Action": [
                    "ecs:DeregisterTaskDefinition",
                    "ecs:DescribeTaskDefinition",
                    "ecs:ListTaskDefinitions",
                ],
                "Resource": "*",
            },
            {
                "Sid": "RegisterPoolTaskDefinitions",
                # Only families the executor names for this pool: a revision registered into
                # another pool's family would be what that pool's runs start.
                "Effect": "Allow",
                "Action": ["ecs:RegisterTaskDefinition"],
                "Resource": [f"{ecs}:task-definition/{family_prefix}*:*"],
            },
            {
                "Sid": "RunTasksOnPoolCluster",
                "Effect": "Allow",
                "Action": ["ecs:RunTask"],
                "Resource": [f"{ecs}:task-definition/*"],
                "Condition": on_our_cluster,
            },
            {
                "Sid": "WatchTasksOnPoolCluster",
                "Effect": "Allow",
                "Action": ["ecs:DescribeTasks", "ecs:StopTask"],
                "Resource": [f"{ecs}:task/{cluster_name}/*"],
            },
            {
                "Sid": "TagTasksAtLaunch",
                "Effect": "Allow",
                "Action": ["ecs:TagResource"],
                "Resource": [f"{ecs}:task/{cluster_name}/*"],
                "Condition": {"StringEquals": {"ecs:CreateAction": "RunTask"}},
            },
            {
                "Sid": "TagTaskDefinitionsAtRegistration",
                # The executor tags the task definitions it registers; AWS authorizes tags given
                # at creation as ecs:TagResource, which this grants for registering only.
                "Effect": "Allow",
                "Action": ["ecs:TagResource"],
                "Resource": [f"{ecs}:task-definition/{family_prefix}*:*"],
                "Condition": {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}},
            },
            {
                "Sid": "ListTasksOnPoolCluster",
                "Effect": "Allow",
                "Action": ["ecs:ListTasks"],
                "Resource": "*",
                "Condition": on_our_cluster,
            },
            {
                "Sid": "DescribePoolCluster",
                "Effect": "Allow",
                "Action": ["ecs:DescribeClusters"],
                "Resource": [cluster_arn],
            },
            {
                "Sid": "PassTaskRoles",
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": sorted(pass_role_arns),
                "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            },
            {
                "Sid": "ReadPoolLogs",
                "Effect": "Allow",
                "Action": ["logs:DescribeLogStreams", "logs:FilterLogEvents", "logs:GetLogEvents"],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            },
            {
                "Sid": "RegistryLogin",
                # GetAuthorizationToken cannot be scoped to a repository.
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": "*",
            },
            {
                "Sid": "PushPullPoolRepository",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:CompleteLayerUpload",
                    "ecr:DescribeImages",
                    "ecr:DescribeRepositories",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:InitiateLayerUpload",
                    "ecr:PutImage",
                    "ecr:UploadLayerPart",
                ],
                "Resource": [repository_arn],
            },
            {
                "Sid": "PoolCodeBundles",
                # What push_pools/bundle_storage.py calls: put, get and delete of one object by
                # key; it never lists, so no s3:ListBucket and nothing on the bucket itself.
                "Effect": "Allow",
                "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                "Resource": [bundle_objects_arn],
            },
        ],
    }
