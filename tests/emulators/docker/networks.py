"""Networks: the predefined bridge, host and none, and user-defined bridge networks.

Nothing is routed; a network records its containers (an endpoint with an address from its
subnet while the container runs) so inspect and list look as they do on an engine, and so
removing a network that a running container uses fails as it does there.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.docker.exceptions import Conflict, Forbidden, InvalidParameter, NotFound
from tests.emulators.docker.filters import label_matches
from tests.emulators.docker.wire import now_ns, rfc3339

__all__ = ["Endpoint", "Network", "NetworkStore", "PREDEFINED"]

PREDEFINED = ("bridge", "host", "none")


@dataclass
class Endpoint:
    container_id: str
    container_name: str
    aliases: list[str]
    endpoint_id: str = field(default_factory=lambda: secrets.token_hex(32))
    ip: str = ""
    mac: str = ""


@dataclass
class Network:
    id: str
    name: str
    driver: str = "bridge"
    scope: str = "local"
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    subnet: str = ""
    gateway: str = ""
    created_ns: int = field(default_factory=now_ns)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # by container id
    _next_host: int = 2

    def allocate(self) -> tuple[str, str]:
        """An address and MAC for a new endpoint (none on host and none networks)."""
        if not self.subnet:
            return "", ""
        network = ipaddress.ip_network(self.subnet)
        address = network.network_address + self._next_host
        self._next_host += 1
        mac = "02:42:" + ":".join(f"{byte:02x}" for byte in address.packed)
        return str(address), mac

    def to_api(self, *, with_containers: bool = True) -> dict[str, Any]:
        config = [{"Subnet": self.subnet, "Gateway": self.gateway}] if self.subnet else []
        containers = {
            endpoint.container_id: {
                "Name": endpoint.container_name,
                "EndpointID": endpoint.endpoint_id,
                "MacAddress": endpoint.mac,
                "IPv4Address": f"{endpoint.ip}/{self.prefix_length}" if endpoint.ip else "",
                "IPv6Address": "",
            }
            for endpoint in self.endpoints.values()
        }
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": rfc3339(self.created_ns),
            "Scope": self.scope,
            "Driver": self.driver,
            "EnableIPv6": self.enable_ipv6,
            "IPAM": {"Driver": "default", "Options": None, "Config": config},
            "Internal": self.internal,
            "Attachable": self.attachable,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers if with_containers else {},
            "Options": dict(self.options),
            "Labels": dict(self.labels),
        }

    @property
    def prefix_length(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen if self.subnet else 0


class NetworkStore:
    def __init__(self) -> None:
        self.networks: dict[str, Network] = {}
        self._subnets = 17  # 172.17.0.0/16 is the default bridge's, as on an engine
        self._add("bridge", "bridge")
        self._add("host", "host")
        self._add("none", "null")

    def _add(self, name: str, driver: str, **settings: Any) -> Network:
        subnet = gateway = ""
        if driver == "bridge":
            subnet, gateway = f"172.{self._subnets}.0.0/16", f"172.{self._subnets}.0.1"
            self._subnets += 1
        network = Network(
            id=secrets.token_hex(32),
            name=name,
            driver=driver,
            subnet=subnet,
            gateway=gateway,
            **settings,
        )
        self.networks[network.id] = network
        return network

    def create(self, body: dict[str, Any]) -> Network:
        name = body.get("Name") or ""
        if not name:
            raise InvalidParameter("network name must not be empty")
        if self.find(name, exact=True) is not None:
            raise Conflict(f"network with name {name} already exists")
        driver = body.get("Driver") or "bridge"
        if driver not in ("bridge", "overlay", "macvlan", "ipvlan"):
            raise NotFound(f'plugin "{driver}" not found')
        return self._add(
            name,
            driver,
            internal=bool(body.get("Internal")),
            attachable=bool(body.get("Attachable")),
            enable_ipv6=bool(body.get("EnableIPv6")),
            labels=dict(body.get("Labels") or {}),
            options=dict(body.get("Options") or {}),
        )

    def find(self, text: str, *, exact: bool = False) -> Network | None:
        """By full id, name, or (unless exact) a unique id prefix: the engine's order."""
        if text in self.networks:
            return self.networks[text]
        by_name = [n for n in self.networks.values() if n.name == text]
        if by_name or exact:
            return by_name[0] if by_name else None
        by_prefix = [n for n in self.networks.values() if n.id.startswith(text)]
        return by_prefix[0] if len(by_prefix) == 1 else None

    def get(self, text: str) -> Network:
        network = self.find(text)
        if network is None:
            raise NotFound(f"network {text} not found")
        return network

    def remove(self, text: str) -> None:
        network = self.get(text)
        if network.name in PREDEFINED:
            raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
        if network.endpoints:
            raise Forbidden(
                f"error while removing network: network {network.name} id {network.id} has "
                "active endpoints"
            )
        del self.networks[network.id]

    def list_networks(self, filters: dict[str, list[str]]) -> list[Network]:
        def keep(network: Network) -> bool:
            checks: dict[str, Callable[[str], bool]] = {
                "name": lambda v: v in network.name,
                "id": lambda v: network.id.startswith(v),
                "driver": lambda v: network.driver == v,
                "scope": lambda v: network.scope == v,
                "type": lambda v: (network.name in PREDEFINED) == (v == "builtin"),
                "label": lambda v: label_matches(network.labels, v),
            }
            for key, values in filters.items():
                # Several labels must all match; several values of another key, any one.
                combine = all if key == "label" else any
                if key in checks and not combine(checks[key](value) for value in values):
                    return False
            return True

        return [network for network in self.networks.values() if keep(network)]
