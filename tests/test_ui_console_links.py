"""Console links the UI builds from infrastructure ids (no browser needed: pure text)."""

from __future__ import annotations

import pytest

from push_pools.ui.console_links import for_infrastructure


@pytest.mark.parametrize(
    ("infrastructure_id", "url"),
    [
        (
            "ecs:eu-west-1:flows:pp-abc-1",
            "https://eu-west-1.console.aws.amazon.com/ecs/v2/clusters/flows/tasks?region=eu-west-1",
        ),
        (
            "arn:aws:ecs:us-east-1:123456789012:task/flows/0a1b2c",
            "https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/flows/tasks/0a1b2c"
            "/configuration?region=us-east-1",
        ),
        (
            "cloud-run:my-proj:europe-west1:pp-job-1a2b:pp-run-1",
            "https://console.cloud.google.com/run/jobs/details/europe-west1/pp-job-1a2b"
            "/executions?project=my-proj",
        ),
        (
            "aci:sub:rg:group",
            "https://portal.azure.com/#@/resource/subscriptions/sub/resourceGroups/rg"
            "/providers/Microsoft.ContainerInstance/containerGroups/group/overview",
        ),
        ("pid:1234", None),
        ("docker:pp-run-1", None),
        ("ecs:only-region", None),
        ("aci:sub::group", None),
        (None, None),
    ],
)
def test_console_links_only_for_cloud_ids_push_pools_writes(
    infrastructure_id: str | None, url: str | None
) -> None:
    assert for_infrastructure(infrastructure_id) == url


def test_id_parts_are_escaped_into_the_link() -> None:
    url = for_infrastructure("aci:sub:rg/../x:group?a=b")
    assert url is not None and "rg%2F..%2Fx" in url and "group%3Fa%3Db" in url


@pytest.mark.parametrize(
    ("identifier", "url"),
    [
        (
            "arn:aws:ecs:eu-west-1:123456789012:cluster/pp-pool",
            "https://eu-west-1.console.aws.amazon.com/ecs/v2/clusters/pp-pool?region=eu-west-1",
        ),
        (
            "arn:aws:iam::123456789012:role/pp-pool-execution",
            "https://console.aws.amazon.com/iam/home#/roles/details/pp-pool-execution",
        ),
        (
            "arn:aws:logs:eu-west-1:123456789012:log-group:/push-pools/pool:*",
            "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
            "#logsV2:log-groups/log-group/$252Fpush-pools$252Fpool",
        ),
        (
            "projects/my-proj/locations/europe-west1/repositories/pp",
            "https://console.cloud.google.com/artifacts/docker/my-proj/europe-west1/pp"
            "?project=my-proj",
        ),
        (
            "/subscriptions/s/resourceGroups/push-pools-pool",
            "https://portal.azure.com/#@/resource/subscriptions/s/resourceGroups/push-pools-pool"
            "/overview",
        ),
        (
            "arn:aws:s3:::pp-pool-bundles-0123456789",
            "https://s3.console.aws.amazon.com/s3/buckets/pp-pool-bundles-0123456789",
        ),
        (
            "projects/_/buckets/pp-pool-bundles-01234567",
            "https://console.cloud.google.com/storage/browser/pp-pool-bundles-01234567",
        ),
        ("arn:aws:iam::123456789012:root", None),
        ("block:azure-credentials", None),
        ("none:vpc-1", None),
    ],
)
def test_provisioned_resources_link_to_their_console_page(identifier: str, url: str | None) -> None:
    from push_pools.ui.console_links import for_record

    assert for_record(identifier) == url
