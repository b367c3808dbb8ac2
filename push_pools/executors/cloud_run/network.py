"""How a Cloud Run job reaches a VPC: a Serverless VPC Access connector, or direct VPC egress.

Standard library only (checks.py runs it at deploy time). Direct VPC egress puts the job's
task on a subnetwork of the VPC itself ("Direct VPC egress with a VPC network" in Google's Cloud
Run documentation): no connector to pay for. Cloud Run takes one way or the other, never both,
and refuses the job only when it is created; these rules say so when the deployment is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["EGRESS", "VpcSettings", "vpc_errors"]

# The gcloud spelling users know (`--vpc-egress`) -> the v2 API's enum name.
EGRESS = {"all-traffic": "ALL_TRAFFIC", "private-ranges-only": "PRIVATE_RANGES_ONLY"}
# Compute Engine resource names (RFC 1035): networks, subnetworks and network tags.
_NAME = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?"
_NAME_ONLY = re.compile(rf"^{_NAME}$")
_NETWORK_PATH = re.compile(rf"^projects/[^/]+/global/networks/{_NAME}$")
_SUBNETWORK_PATH = re.compile(rf"^projects/[^/]+/regions/([^/]+)/subnetworks/{_NAME}$")
MAX_TAGS = 64


@dataclass(frozen=True)
class VpcSettings:
    """The job variables that place a job on a network; see template for each one."""

    connector: str | None = None
    network: str | None = None
    subnetwork: str | None = None
    tags: tuple[str, ...] = ()
    egress: str | None = None

    @property
    def direct(self) -> bool:
        return bool(self.network or self.subnetwork)

    def vpc_access(self) -> dict[str, Any] | None:
        """The task template's `vpc_access` (run_v2.VpcAccess fields); None: no VPC."""
        access: dict[str, Any] = {}
        if self.connector:
            access["connector"] = self.connector
        if self.direct:
            interface: dict[str, Any] = {}
            if self.network:
                interface["network"] = self.network
            if self.subnetwork:
                interface["subnetwork"] = self.subnetwork
            if self.tags:
                interface["tags"] = list(self.tags)
            access["network_interfaces"] = [interface]
        if access and self.egress:
            access["egress"] = EGRESS[self.egress]
        return access or None


def vpc_errors(values: dict[str, Any], region: str) -> list[str]:
    """Why Cloud Run would refuse the VPC variables of a job running in `region`; [] if none."""
    problems: list[str] = []
    connector = _text(values, "vpc_connector_name", problems)
    network = _text(values, "vpc_network", problems)
    subnetwork = _text(values, "vpc_subnetwork", problems)
    egress = _text(values, "vpc_egress", problems)
    tags = values.get("vpc_network_tags") or []
    if network and not (_NAME_ONLY.match(network) or _NETWORK_PATH.match(network)):
        problems.append(
            f'vpc_network {network!r} is not a VPC network: give its name ("default") or '
            '"projects/P/global/networks/NAME"'
        )
    if subnetwork:
        path = _SUBNETWORK_PATH.match(subnetwork)
        if not (_NAME_ONLY.match(subnetwork) or path):
            problems.append(
                f"vpc_subnetwork {subnetwork!r} is not a subnetwork: give its name or "
                '"projects/P/regions/REGION/subnetworks/NAME"'
            )
        elif path and path.group(1) != region:
            problems.append(
                f"vpc_subnetwork {subnetwork!r} is in region {path.group(1)}, but the job runs "
                f"in {region}: direct VPC egress needs a subnetwork of the job's region"
            )
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        problems.append(f"vpc_network_tags must be a list of strings, got {tags!r}")
    else:
        bad = [tag for tag in tags if not _NAME_ONLY.match(tag)]
        if bad:
            problems.append(
                f"vpc_network_tags {', '.join(map(repr, bad))}: a network tag is 1-63 lowercase "
                "letters, digits or '-', starting with a letter and not ending with '-'"
            )
        if len(tags) > MAX_TAGS:
            problems.append(f"vpc_network_tags: at most {MAX_TAGS} tags, got {len(tags)}")
        if tags and not (network or subnetwork):
            problems.append(
                "vpc_network_tags apply to direct VPC egress only: set vpc_network or "
                "vpc_subnetwork too"
            )
    if connector and (network or subnetwork):
        problems.append(
            "set either vpc_connector_name (a Serverless VPC Access connector) or "
            "vpc_network/vpc_subnetwork (direct VPC egress), not both: Cloud Run takes one"
        )
    if egress:
        if egress not in EGRESS:
            problems.append(f"vpc_egress must be {' or '.join(map(repr, EGRESS))}, got {egress!r}")
        elif not (connector or network or subnetwork):
            problems.append(
                "vpc_egress says which traffic goes through the VPC: set vpc_network, "
                "vpc_subnetwork or vpc_connector_name too"
            )
    return problems


def _text(values: dict[str, Any], name: str, problems: list[str]) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"job variable '{name}' must be a string, got {value!r}")
        return None
    return value.strip() or None
