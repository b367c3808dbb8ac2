"""Network steps: where flow-run tasks get their network interface.

With a default VPC we adopt it (created=False: never changed, never deleted) and its default
subnets. Without one we create a VPC with an internet gateway, public subnets in up to three
availability zones (fewer when the region has fewer) and a route table. Either way we create an
egress-only security group, which the pool's network configuration names.

Order matters: VPC, internet gateway, subnets, route table (associates the subnets), security
group; teardown runs it backwards. Step verbs follow provisioners/plan.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from provisioners.aws.base import AwsStep, StepIds, owned, tags_of
from provisioners.aws.errors import CLOUD, absent_on
from provisioners.aws.session import AwsContext
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck

__all__ = [
    "InternetGatewayStep",
    "RouteTableStep",
    "SecurityGroupStep",
    "SubnetsStep",
    "VpcStep",
]

VPC_CIDR = "10.0.0.0/16"
SUBNET_PREFIX = 20  # 4,091 addresses per subnet: room for many concurrent Fargate tasks
MAX_ZONES = 3
ANYWHERE = "0.0.0.0/0"

VPC_GONE = frozenset({"InvalidVpcID.NotFound"})
IGW_GONE = frozenset({"InvalidInternetGatewayID.NotFound"})
SUBNET_GONE = frozenset({"InvalidSubnetID.NotFound"})
TABLE_GONE = frozenset({"InvalidRouteTableID.NotFound", "InvalidAssociationID.NotFound"})
GROUP_GONE = frozenset({"InvalidGroup.NotFound", "InvalidGroupId.NotFound"})


def _filter(name: str, *values: str) -> dict[str, Any]:
    return {"Name": name, "Values": list(values)}


def _tag_spec(ctx: AwsContext, resource_type: str, name: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": ctx.tag_list(name=name)}]


def _vpc(ctx: AwsContext) -> ResourceRecord | None:
    return ctx.outputs.get(StepIds.VPC)


def _vpc_id(ctx: AwsContext, step_id: str) -> str:
    """The VPC id for a step's create/update; the Plan ran the VPC step first."""
    vpc = _vpc(ctx)
    if vpc is None:
        raise ProvisioningError("the VPC step has no record", step_id=step_id, cloud=CLOUD)
    return str(vpc.data["vpc_id"])


class VpcStep(AwsStep):
    id = StepIds.VPC
    kind = "aws:ec2:vpc"

    def __init__(self, name: str) -> None:
        self.name = name
        self.title = f"VPC (the default VPC, else a new VPC {name})"

    def _find(self, ctx: AwsContext, filters: list[dict[str, Any]]) -> dict[str, Any] | None:
        vpcs = ctx.client("ec2").describe_vpcs(Filters=filters)["Vpcs"]
        # Oldest id first, so two lookups always agree even if a race made two of ours.
        return dict(sorted(vpcs, key=lambda v: v["VpcId"])[0]) if vpcs else None

    def _record_of(self, ctx: AwsContext, vpc: dict[str, Any], created: bool) -> ResourceRecord:
        data = {
            "vpc_id": vpc["VpcId"],
            "cidr": vpc["CidrBlock"],
            "default": bool(vpc.get("IsDefault")),
        }
        return self.record(ctx.arn("ec2", f"vpc/{vpc['VpcId']}"), data, created=created)

    def _check(self, ctx: AwsContext) -> StepCheck:
        # Ours first: once we created a VPC, a default VPC made later does not move the pool.
        ours = self._find(ctx, ctx.ec2_tag_filters())
        if ours is not None:
            return self.found(self._record_of(ctx, ours, created=True))
        default = self._find(ctx, [_filter("is-default", "true")])
        if default is not None:
            detail = f"default VPC {default['VpcId']}: used as is, never deleted"
            return self.found(self._record_of(ctx, default, created=False), detail=detail)
        return self.missing(
            f"no default VPC: a new VPC {VPC_CIDR} with public subnets in up to "
            f"{MAX_ZONES} availability zones"
        )

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        ec2 = ctx.client("ec2")
        ours = self._find(ctx, ctx.ec2_tag_filters())
        if ours is None:
            ours = ec2.create_vpc(
                CidrBlock=VPC_CIDR, TagSpecifications=_tag_spec(ctx, "vpc", self.name)
            )["Vpc"]
        # A new VPC is "pending" for a moment; subnets and gateways want it "available".
        ec2.get_waiter("vpc_available").wait(
            VpcIds=[ours["VpcId"]], WaiterConfig={"Delay": 2, "MaxAttempts": 30}
        )
        return self._record_of(ctx, ours, created=True)

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        vpc_id = record.data["vpc_id"]
        # A crash between a child's creation and its record leaves it unrecorded; it carries our
        # tags, so remove it here rather than fail on DependencyViolation.
        _sweep_our_children(ctx, vpc_id)
        absent_on(VPC_GONE, ctx.client("ec2").delete_vpc, VpcId=vpc_id)


class InternetGatewayStep(AwsStep):
    id = StepIds.INTERNET_GATEWAY
    kind = "aws:ec2:internet-gateway"
    title = "internet gateway of the VPC"

    def _record_of(
        self, ctx: AwsContext, igw_id: str, vpc_id: str, created: bool
    ) -> ResourceRecord:
        data = {"internet_gateway_id": igw_id, "vpc_id": vpc_id}
        return self.record(ctx.arn("ec2", f"internet-gateway/{igw_id}"), data, created=created)

    def _attached_to(self, ctx: AwsContext, vpc_id: str) -> list[dict[str, Any]]:
        return list(
            ctx.client("ec2").describe_internet_gateways(
                Filters=[_filter("attachment.vpc-id", vpc_id)]
            )["InternetGateways"]
        )

    def _ours(self, ctx: AwsContext) -> dict[str, Any] | None:
        found = ctx.client("ec2").describe_internet_gateways(Filters=ctx.ec2_tag_filters())
        gateways = sorted(found["InternetGateways"], key=lambda g: g["InternetGatewayId"])
        return dict(gateways[0]) if gateways else None

    def _check(self, ctx: AwsContext) -> StepCheck:
        vpc = _vpc(ctx)
        if vpc is None:
            return self.missing("route to the internet for the new VPC")
        vpc_id = vpc.data["vpc_id"]
        attached = self._attached_to(ctx, vpc_id)
        if not vpc.created:
            if attached:
                igw_id = attached[0]["InternetGatewayId"]
                return self.found(self._record_of(ctx, igw_id, vpc_id, created=False))
            # Nothing to adopt, but a record keeps resumption uniform; it deletes nothing.
            record = self.record(
                f"none:{vpc_id}", {"internet_gateway_id": None, "vpc_id": vpc_id}, created=False
            )
            return self.found(
                record,
                detail=f"default VPC {vpc_id} has no internet gateway: tasks need another way "
                "to reach ECR (NAT gateway or VPC endpoints)",
            )
        ours = self._ours(ctx)
        if ours is None:
            if attached:  # someone attached their own gateway to our VPC: use it, keep it
                igw_id = attached[0]["InternetGatewayId"]
                return self.found(self._record_of(ctx, igw_id, vpc_id, created=False))
            return self.missing(f"attached to {vpc_id}")
        record = self._record_of(ctx, ours["InternetGatewayId"], vpc_id, created=True)
        attachments = {a["VpcId"] for a in ours.get("Attachments", [])}
        return self.found(record, [] if vpc_id in attachments else [f"not attached to {vpc_id}"])

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        ours = self._ours(ctx)
        if ours is None:
            ours = ctx.client("ec2").create_internet_gateway(
                TagSpecifications=_tag_spec(ctx, "internet-gateway", ctx.names.vpc)
            )["InternetGateway"]
        return self._attach(ctx, ours)

    def _update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        ours = self._ours(ctx)
        if ours is None:
            return self._create(ctx)
        return self._attach(ctx, ours)

    def _attach(self, ctx: AwsContext, igw: dict[str, Any]) -> ResourceRecord:
        ec2 = ctx.client("ec2")
        vpc_id = _vpc_id(ctx, self.id)
        igw_id = igw["InternetGatewayId"]
        for attachment in igw.get("Attachments", []):
            if attachment["VpcId"] != vpc_id:  # still on a VPC we replaced
                ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=attachment["VpcId"])
        if vpc_id not in {a["VpcId"] for a in igw.get("Attachments", [])}:
            ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
        return self._record_of(ctx, igw_id, vpc_id, created=True)

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        _delete_internet_gateway(ctx, record.data["internet_gateway_id"])

    def _sweep(self, ctx: AwsContext) -> None:
        found = ctx.client("ec2").describe_internet_gateways(Filters=ctx.ec2_tag_filters())
        for gateway in found["InternetGateways"]:
            _delete_internet_gateway(ctx, gateway["InternetGatewayId"])


class SubnetsStep(AwsStep):
    """One record for the pool's subnets (one per availability zone): `identifier` lists their
    ARNs, comma-separated, and `data["subnet_ids"]` their ids in zone order."""

    id = StepIds.SUBNETS
    kind = "aws:ec2:subnets"
    title = "subnets (one per availability zone, up to 3)"

    def _record_of(
        self, ctx: AwsContext, subnets: list[dict[str, Any]], created: bool
    ) -> ResourceRecord:
        subnets = sorted(subnets, key=lambda s: (s["AvailabilityZone"], s["SubnetId"]))
        arns = [s.get("SubnetArn") or ctx.arn("ec2", f"subnet/{s['SubnetId']}") for s in subnets]
        data = {
            "subnet_ids": [s["SubnetId"] for s in subnets],
            "availability_zones": [s["AvailabilityZone"] for s in subnets],
            "vpc_id": subnets[0]["VpcId"],
        }
        return self.record(",".join(arns), data, created=created)

    def _subnets(self, ctx: AwsContext, *filters: dict[str, Any]) -> list[dict[str, Any]]:
        found = ctx.client("ec2").describe_subnets(Filters=list(filters))
        return [dict(s) for s in found["Subnets"]]

    def _ours(self, ctx: AwsContext, vpc_id: str) -> list[dict[str, Any]]:
        return self._subnets(ctx, _filter("vpc-id", vpc_id), *ctx.ec2_tag_filters())

    def _zones(self, ctx: AwsContext) -> list[str]:
        zones = ctx.client("ec2").describe_availability_zones()["AvailabilityZones"]
        # Local and Wavelength zones cannot host Fargate tasks.
        usable = [
            z["ZoneName"]
            for z in zones
            if z.get("State") == "available"
            and z.get("ZoneType", "availability-zone") == "availability-zone"
        ]
        return sorted(usable)

    def _check(self, ctx: AwsContext) -> StepCheck:
        vpc = _vpc(ctx)
        if vpc is None:
            return self.missing(f"public subnets in up to {MAX_ZONES} availability zones")
        vpc_id = vpc.data["vpc_id"]
        if not vpc.created:
            return self._adopt_default(ctx, vpc_id)
        ours = self._ours(ctx, vpc_id)
        if not ours:
            return self.missing(f"public subnets in up to {MAX_ZONES} availability zones")
        wanted = min(MAX_ZONES, len(self._zones(ctx)))
        short = wanted - len(ours)
        return self.found(
            self._record_of(ctx, ours, created=True),
            [f"{short} subnet(s) missing"] if short > 0 else [],
        )

    def _adopt_default(self, ctx: AwsContext, vpc_id: str) -> StepCheck:
        subnets = self._subnets(
            ctx, _filter("vpc-id", vpc_id), _filter("default-for-az", "true")
        ) or self._subnets(ctx, _filter("vpc-id", vpc_id))
        if not subnets:
            raise ProvisioningError(
                f"the default VPC {vpc_id} has no subnets: create a default subnet "
                "(aws ec2 create-default-subnet --availability-zone ...) or delete the default "
                "VPC so push-pools creates its own",
                step_id=self.id,
                cloud=CLOUD,
            )
        record = self._record_of(ctx, subnets, created=False)
        return self.found(record, detail=f"{len(subnets)} default subnets of {vpc_id}")

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        return self._ensure(ctx)

    def _update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        return self._ensure(ctx)

    def _ensure(self, ctx: AwsContext) -> ResourceRecord:
        ec2 = ctx.client("ec2")
        vpc_id = _vpc_id(ctx, self.id)
        ours = self._ours(ctx, vpc_id)
        zones = self._zones(ctx)
        if not zones:
            raise ProvisioningError(
                f"region {ctx.region} reports no available availability zone",
                step_id=self.id,
                cloud=CLOUD,
            )
        covered = {s["AvailabilityZone"] for s in ours}
        needed = min(MAX_ZONES, len(zones)) - len(ours)
        free = self._free_blocks(ctx, vpc_id, ctx.output(StepIds.VPC, "cidr", VPC_CIDR))
        for zone in [z for z in zones if z not in covered][: max(needed, 0)]:
            block = next(free, None)
            if block is None:
                raise ProvisioningError(
                    f"no free /{SUBNET_PREFIX} address range left in VPC {vpc_id}",
                    step_id=self.id,
                    cloud=CLOUD,
                )
            subnet = ec2.create_subnet(
                VpcId=vpc_id,
                CidrBlock=str(block),
                AvailabilityZone=zone,
                TagSpecifications=_tag_spec(ctx, "subnet", f"{ctx.names.vpc}-{zone}"),
            )["Subnet"]
            # Public subnets: tasks get a public address to pull images without a NAT gateway.
            ec2.modify_subnet_attribute(
                SubnetId=subnet["SubnetId"], MapPublicIpOnLaunch={"Value": True}
            )
            ours.append(dict(subnet))
        return self._record_of(ctx, ours, created=True)

    def _free_blocks(
        self, ctx: AwsContext, vpc_id: str, cidr: str
    ) -> Iterator[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        taken = [
            ipaddress.ip_network(s["CidrBlock"])
            for s in self._subnets(ctx, _filter("vpc-id", vpc_id))
        ]
        for block in ipaddress.ip_network(cidr).subnets(new_prefix=SUBNET_PREFIX):
            if not any(block.overlaps(t) for t in taken):
                yield block

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        for subnet_id in record.data.get("subnet_ids", []):
            absent_on(SUBNET_GONE, ctx.client("ec2").delete_subnet, SubnetId=subnet_id)

    def _sweep(self, ctx: AwsContext) -> None:
        for subnet in self._subnets(ctx, *ctx.ec2_tag_filters()):
            absent_on(SUBNET_GONE, ctx.client("ec2").delete_subnet, SubnetId=subnet["SubnetId"])


class RouteTableStep(AwsStep):
    id = StepIds.ROUTE_TABLE
    kind = "aws:ec2:route-table"
    title = "route table (default route to the internet gateway)"

    def _record_of(self, ctx: AwsContext, table: dict[str, Any], created: bool) -> ResourceRecord:
        data = {"route_table_id": table["RouteTableId"], "vpc_id": table["VpcId"]}
        arn = ctx.arn("ec2", f"route-table/{table['RouteTableId']}")
        return self.record(arn, data, created=created)

    def _ours(self, ctx: AwsContext, vpc_id: str) -> dict[str, Any] | None:
        tables = ctx.client("ec2").describe_route_tables(
            Filters=[_filter("vpc-id", vpc_id), *ctx.ec2_tag_filters()]
        )["RouteTables"]
        return dict(sorted(tables, key=lambda t: t["RouteTableId"])[0]) if tables else None

    def _check(self, ctx: AwsContext) -> StepCheck:
        vpc = _vpc(ctx)
        if vpc is None:
            return self.missing(f"{ANYWHERE} via the internet gateway, for our subnets")
        vpc_id = vpc.data["vpc_id"]
        if not vpc.created:
            main = ctx.client("ec2").describe_route_tables(
                Filters=[_filter("vpc-id", vpc_id), _filter("association.main", "true")]
            )["RouteTables"]
            if main:
                record = self._record_of(ctx, main[0], created=False)
                return self.found(record, detail=f"main route table of default VPC {vpc_id}")
            # Every VPC has a main table; never add ours to a VPC we only adopted.
            none = self.record(f"none:{vpc_id}", {"route_table_id": None}, created=False)
            return self.found(none, detail=f"default VPC {vpc_id} has no main route table")
        table = self._ours(ctx, vpc_id)
        if table is None:
            return self.missing(f"{ANYWHERE} via the internet gateway, for our subnets")
        return self.found(self._record_of(ctx, table, created=True), self._drift(ctx, table))

    def _wanted(self, ctx: AwsContext) -> tuple[str | None, list[str]]:
        gateway = ctx.output(StepIds.INTERNET_GATEWAY, "internet_gateway_id")
        return gateway, list(ctx.output(StepIds.SUBNETS, "subnet_ids", []))

    def _drift(self, ctx: AwsContext, table: dict[str, Any]) -> list[str]:
        gateway, subnets = self._wanted(ctx)
        drift = []
        route = [r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == ANYWHERE]
        if gateway and (not route or route[0].get("GatewayId") != gateway):
            drift.append("default route")
        associated = {a.get("SubnetId") for a in table.get("Associations", [])}
        unassociated = [s for s in subnets if s not in associated]
        if unassociated:
            drift.append(f"subnets not associated: {', '.join(unassociated)}")
        return drift

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        vpc_id = _vpc_id(ctx, self.id)
        table = self._ours(ctx, vpc_id)
        if table is None:
            table = ctx.client("ec2").create_route_table(
                VpcId=vpc_id, TagSpecifications=_tag_spec(ctx, "route-table", ctx.names.vpc)
            )["RouteTable"]
        self._converge(ctx, table)
        return self._record_of(ctx, table, created=True)

    def _update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        table_id = record.data["route_table_id"]
        table = ctx.client("ec2").describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
        self._converge(ctx, table)
        return self._record_of(ctx, table, created=True)

    def _converge(self, ctx: AwsContext, table: dict[str, Any]) -> None:
        ec2 = ctx.client("ec2")
        table_id = table["RouteTableId"]
        gateway, subnets = self._wanted(ctx)
        route = [r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == ANYWHERE]
        if gateway and not route:
            ec2.create_route(
                RouteTableId=table_id, DestinationCidrBlock=ANYWHERE, GatewayId=gateway
            )
        elif gateway and route[0].get("GatewayId") != gateway:
            ec2.replace_route(
                RouteTableId=table_id, DestinationCidrBlock=ANYWHERE, GatewayId=gateway
            )
        associated = {a.get("SubnetId") for a in table.get("Associations", [])}
        for subnet_id in subnets:
            if subnet_id in associated:
                continue
            elsewhere = ec2.describe_route_tables(
                Filters=[_filter("association.subnet-id", subnet_id)]
            )["RouteTables"]
            current = [
                a
                for t in elsewhere
                for a in t.get("Associations", [])
                if a.get("SubnetId") == subnet_id
            ]
            if current:  # a subnet has one explicit table: move it to ours
                ec2.replace_route_table_association(
                    AssociationId=current[0]["RouteTableAssociationId"], RouteTableId=table_id
                )
            else:
                ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        _delete_route_table(ctx, record.data["route_table_id"])

    def _sweep(self, ctx: AwsContext) -> None:
        found = ctx.client("ec2").describe_route_tables(Filters=ctx.ec2_tag_filters())
        for table in found["RouteTables"]:
            _delete_route_table(ctx, table["RouteTableId"])


class SecurityGroupStep(AwsStep):
    """Egress only: tasks call out (image pulls, the push-pools API); nothing may call in."""

    id = StepIds.SECURITY_GROUP
    kind = "aws:ec2:security-group"

    def __init__(self, name: str) -> None:
        self.name = name
        self.title = f"security group {name} (egress only)"

    def _record_of(self, ctx: AwsContext, group: dict[str, Any], created: bool) -> ResourceRecord:
        group_id = group["GroupId"]
        arn = group.get("SecurityGroupArn") or ctx.arn("ec2", f"security-group/{group_id}")
        data = {"group_id": group_id, "name": self.name, "vpc_id": group["VpcId"]}
        return self.record(arn, data, created=created)

    def _find(self, ctx: AwsContext, vpc_id: str) -> dict[str, Any] | None:
        groups = ctx.client("ec2").describe_security_groups(
            Filters=[_filter("vpc-id", vpc_id), _filter("group-name", self.name)]
        )["SecurityGroups"]
        return dict(groups[0]) if groups else None

    def _check(self, ctx: AwsContext) -> StepCheck:
        vpc = _vpc(ctx)
        group = self._find(ctx, vpc.data["vpc_id"]) if vpc is not None else None
        if group is None:
            return self.missing("no inbound rules, all outbound traffic allowed")
        what = f"security group {self.name}"
        created = owned(ctx, tags_of(group.get("Tags")), what, adoptable=True)
        return self.found(self._record_of(ctx, group, created), self._drift(group))

    @staticmethod
    def _drift(group: dict[str, Any]) -> list[str]:
        drift = []
        if group.get("IpPermissions"):
            drift.append("inbound rules")
        if not _allows_all_egress(group):
            drift.append("outbound rule")
        return drift

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        vpc_id = _vpc_id(ctx, self.id)
        group = self._find(ctx, vpc_id)
        if group is not None:  # created meanwhile: the same ownership rules as check
            what = f"security group {self.name}"
            created = owned(ctx, tags_of(group.get("Tags")), what, adoptable=True)
            return self._record_of(ctx, group, created)
        group_id = ctx.client("ec2").create_security_group(
            GroupName=self.name,
            Description=f"push-pools pool {ctx.config.pool_name}: flow-run tasks, egress only",
            VpcId=vpc_id,
            TagSpecifications=_tag_spec(ctx, "security-group", self.name),
        )["GroupId"]
        # A new group allows all egress and no ingress: exactly what we want, nothing to add.
        return self._record_of(ctx, {"GroupId": group_id, "VpcId": vpc_id}, created=True)

    def _update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        ec2 = ctx.client("ec2")
        group_id = record.data["group_id"]
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        if group.get("IpPermissions"):
            ec2.revoke_security_group_ingress(
                GroupId=group_id, IpPermissions=group["IpPermissions"]
            )
        if not _allows_all_egress(group):
            ec2.authorize_security_group_egress(
                GroupId=group_id,
                IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": ANYWHERE}]}],
            )
        return record

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        absent_on(
            GROUP_GONE, ctx.client("ec2").delete_security_group, GroupId=record.data["group_id"]
        )

    def _sweep(self, ctx: AwsContext) -> None:
        ec2 = ctx.client("ec2")
        found = ec2.describe_security_groups(Filters=ctx.ec2_tag_filters())
        for group in found["SecurityGroups"]:
            absent_on(GROUP_GONE, ec2.delete_security_group, GroupId=group["GroupId"])


def _allows_all_egress(group: dict[str, Any]) -> bool:
    return any(
        rule.get("IpProtocol") == "-1"
        and any(r.get("CidrIp") == ANYWHERE for r in rule.get("IpRanges", []))
        for rule in group.get("IpPermissionsEgress", [])
    )


def _delete_internet_gateway(ctx: AwsContext, igw_id: str) -> None:
    ec2 = ctx.client("ec2")
    found = absent_on(IGW_GONE, ec2.describe_internet_gateways, InternetGatewayIds=[igw_id])
    if not found or not found["InternetGateways"]:
        return
    for attachment in found["InternetGateways"][0].get("Attachments", []):
        absent_on(
            IGW_GONE | VPC_GONE,
            ec2.detach_internet_gateway,
            InternetGatewayId=igw_id,
            VpcId=attachment["VpcId"],
        )
    absent_on(IGW_GONE, ec2.delete_internet_gateway, InternetGatewayId=igw_id)


def _delete_route_table(ctx: AwsContext, table_id: str) -> None:
    ec2 = ctx.client("ec2")
    found = absent_on(TABLE_GONE, ec2.describe_route_tables, RouteTableIds=[table_id])
    if not found or not found["RouteTables"]:
        return
    for association in found["RouteTables"][0].get("Associations", []):
        if not association.get("Main"):
            absent_on(
                TABLE_GONE,
                ec2.disassociate_route_table,
                AssociationId=association["RouteTableAssociationId"],
            )
    absent_on(TABLE_GONE, ec2.delete_route_table, RouteTableId=table_id)


def _sweep_our_children(ctx: AwsContext, vpc_id: str) -> None:
    """Delete what carries our tags inside our VPC, children before parents."""
    ec2 = ctx.client("ec2")
    ours = [_filter("vpc-id", vpc_id), *ctx.ec2_tag_filters()]
    for group in ec2.describe_security_groups(Filters=ours)["SecurityGroups"]:
        absent_on(GROUP_GONE, ec2.delete_security_group, GroupId=group["GroupId"])
    for table in ec2.describe_route_tables(Filters=ours)["RouteTables"]:
        _delete_route_table(ctx, table["RouteTableId"])
    for subnet in ec2.describe_subnets(Filters=ours)["Subnets"]:
        absent_on(SUBNET_GONE, ec2.delete_subnet, SubnetId=subnet["SubnetId"])
    gateways = ec2.describe_internet_gateways(
        Filters=[_filter("attachment.vpc-id", vpc_id), *ctx.ec2_tag_filters()]
    )["InternetGateways"]
    for gateway in gateways:
        _delete_internet_gateway(ctx, gateway["InternetGatewayId"])
