"""The AWS provisioner as the CLI sees it: its pool type, flags and credentials block type.

Stdlib only (see provisioners/options.py); `provisioners.aws.adapter` holds the provisioner.
"""

from __future__ import annotations

from provisioners.options import ProvisionerSpec, ProvisionOption

__all__ = ["PROVISIONER"]

PROVISIONER = ProvisionerSpec(
    cloud="aws",
    pool_types=("ecs:push",),
    credentials_block_type="aws-credentials",
    provisioner="provisioners.aws.adapter:AwsProvisioner",
    creates=(
        "IAM user and roles, cluster, log group, registry, code-bundle bucket, network, "
        "credentials block"
    ),
    options=(
        ProvisionOption(
            "region",
            "AWS region (default: the AWS config's; a provisioned pool keeps the region it "
            "was provisioned in).",
        ),
        ProvisionOption("profile", "AWS profile to use.", teardown=True),
        ProvisionOption(
            "create_task_role",
            "Also create a task role for the flows.",
            value_type=bool,
            default=False,
        ),
        ProvisionOption(
            "log_retention_days",
            "Days CloudWatch keeps the flows' logs (default 30).",
            value_type=int,
        ),
        ProvisionOption(
            "resource_name",
            "Override a created resource's name, KEY=NAME (repeatable); KEY is user, policy, "
            "execution_role, task_role, cluster, log_group, repository, bucket, security_group "
            "or vpc. "
            "Naming an existing resource we did not create adopts it.",
            multiple=True,
            metavar="KEY=NAME",
        ),
        ProvisionOption(
            "endpoint_url",
            "One endpoint for every AWS API (moto in tests).",
            teardown=True,
            hidden=True,
        ),
    ),
)
