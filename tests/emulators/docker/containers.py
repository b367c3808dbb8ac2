"""A container's record: its merged config, host config, state and output, in the engine's
inspect and list shapes.

The config merge follows the engine's rules: the image's Env then the container's (a name
without `=` removes it), the image's Labels then the container's, WorkingDir and User from the
container or else the image; an Entrypoint given at create replaces the image's and drops the
image's Cmd; otherwise the image's Entrypoint stays and its Cmd is used when none is given.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.containers import Container as ContainerProcess
from tests.emulators.docker.exceptions import InvalidParameter
from tests.emulators.docker.images import Image
from tests.emulators.docker.logs import LogEntry
from tests.emulators.docker.wire import now_ns, rfc3339

__all__ = ["DockerContainer", "State", "merge_config"]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class State:
    status: str = "created"  # created, running, exited (removed containers are gone)
    exit_code: int = 0
    error: str = ""
    pid: int = 0
    started_ns: int | None = None
    finished_ns: int | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "Status": self.status,
            "Running": self.status == "running",
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": rfc3339(self.started_ns),
            "FinishedAt": rfc3339(self.finished_ns),
        }


@dataclass
class DockerContainer:
    id: str
    name: str  # without the leading slash
    image: Image
    config: dict[str, Any]  # merged, as inspect's Config shows it
    host_config: dict[str, Any]
    networks: dict[str, dict[str, Any]]  # network name -> endpoint settings (Aliases, ...)
    platform: str | None = None
    created_ns: int = field(default_factory=now_ns)
    state: State = field(default_factory=State)
    logs: list[LogEntry] = field(default_factory=list)
    process: ContainerProcess | None = None
    workdir: str = ""  # the directory its process last ran in
    exits: int = 0  # completed runs: a next-exit wait waits for this to grow
    removed: bool = False

    @property
    def running(self) -> bool:
        return self.state.status == "running"

    @property
    def argv(self) -> list[str]:
        return [*(self.config.get("Entrypoint") or []), *(self.config.get("Cmd") or [])]

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config.get("Env") or [] if "=" in item)

    def to_api(self, networks: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """GET /containers/{id}/json; `networks` is NetworkSettings.Networks."""
        argv = self.argv
        bridge = networks.get("bridge", {})
        return {
            "Id": self.id,
            "Created": rfc3339(self.created_ns),
            "Path": argv[0] if argv else "",
            "Args": argv[1:],
            "State": self.state.to_api(),
            "Image": self.image.id,
            "ResolvConfPath": "",
            "HostnamePath": "",
            "HostsPath": "",
            "LogPath": "",
            "Name": f"/{self.name}",
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": self.host_config,
            "GraphDriver": {"Data": None, "Name": "overlay2"},
            "Mounts": self.mounts(),
            "Config": self.config,
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": "",
                "SandboxKey": "",
                "Ports": {},
                "Gateway": bridge.get("Gateway", ""),
                "IPAddress": bridge.get("IPAddress", ""),
                "IPPrefixLen": bridge.get("IPPrefixLen", 0),
                "MacAddress": bridge.get("MacAddress", ""),
                "Networks": networks,
            },
        }

    def summary(self, networks: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """An entry of GET /containers/json."""
        return {
            "Id": self.id,
            "Names": [f"/{self.name}"],
            "Image": self.config.get("Image", ""),
            "ImageID": self.image.id,
            "Command": " ".join(self.argv),
            "Created": self.created_ns // 1_000_000_000,
            "Ports": [],
            "Labels": self.config.get("Labels") or {},
            "State": self.state.status,
            "Status": self.status_text(now_ns()),
            "HostConfig": {"NetworkMode": self.host_config.get("NetworkMode", "bridge")},
            "NetworkSettings": {"Networks": networks},
            "Mounts": self.mounts(),
        }

    def status_text(self, now: int) -> str:
        if self.state.status == "running":
            return f"Up {_duration(now - (self.state.started_ns or now))}"
        if self.state.status == "exited":
            ago = _duration(now - (self.state.finished_ns or now))
            return f"Exited ({self.state.exit_code}) {ago} ago"
        return "Created"

    def mounts(self) -> list[dict[str, Any]]:
        mounts = []
        for bind in self.host_config.get("Binds") or []:
            source, _, rest = bind.partition(":")
            target, _, mode = rest.partition(":")
            mounts.append(
                {
                    "Type": "bind" if source.startswith("/") else "volume",
                    "Source": source,
                    "Destination": target,
                    "Mode": mode,
                    "RW": "ro" not in mode.split(","),
                    "Propagation": "rprivate",
                }
            )
        for mount in self.host_config.get("Mounts") or []:
            mounts.append(
                {
                    "Type": mount.get("Type", "volume"),
                    "Source": mount.get("Source", ""),
                    "Destination": mount.get("Target", ""),
                    "Mode": "",
                    "RW": not mount.get("ReadOnly", False),
                    "Propagation": "rprivate",
                }
            )
        return mounts


def merge_config(body: dict[str, Any], image: Image, container_id: str) -> dict[str, Any]:
    """The container's Config from the create body over the image's config."""
    image_config = image.config
    entrypoint = body.get("Entrypoint")
    cmd = body.get("Cmd")
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    if isinstance(cmd, str):
        cmd = [cmd]
    if not entrypoint:
        if not cmd:
            cmd = image_config.cmd
        if entrypoint is None:
            entrypoint = image_config.entrypoint
    if not entrypoint and not cmd:
        raise InvalidParameter("no command specified")
    env = _merge_env(image_config.env, body.get("Env") or [])
    if not any(item.startswith("PATH=") for item in env):
        env.insert(0, DEFAULT_PATH)
    config = {
        "Hostname": body.get("Hostname") or container_id[:12],
        "Domainname": body.get("Domainname") or "",
        "User": body.get("User") or image_config.user,
        "AttachStdin": bool(body.get("AttachStdin")),
        "AttachStdout": bool(body.get("AttachStdout")),
        "AttachStderr": bool(body.get("AttachStderr")),
        "ExposedPorts": {**image_config.exposed_ports, **(body.get("ExposedPorts") or {})} or None,
        "Tty": bool(body.get("Tty")),
        "OpenStdin": bool(body.get("OpenStdin")),
        "StdinOnce": bool(body.get("StdinOnce")),
        "Env": env,
        "Cmd": cmd or None,
        "Image": body.get("Image", ""),
        "Volumes": {**image_config.volumes, **(body.get("Volumes") or {})} or None,
        "WorkingDir": body.get("WorkingDir") or image_config.working_dir,
        "Entrypoint": entrypoint or None,
        "OnBuild": None,
        "Labels": {**image_config.labels, **(body.get("Labels") or {})},
    }
    stop_signal = body.get("StopSignal") or image_config.stop_signal
    if stop_signal:
        config["StopSignal"] = stop_signal
    if body.get("StopTimeout") is not None:
        config["StopTimeout"] = body["StopTimeout"]
    if body.get("Healthcheck") or image_config.healthcheck:
        config["Healthcheck"] = body.get("Healthcheck") or image_config.healthcheck
    return config


def host_config_defaults() -> dict[str, Any]:
    """What inspect shows for settings a create left out (a fresh dict each time)."""
    return {
        "Binds": None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": "bridge",
        "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False,
        "VolumeDriver": "",
        "VolumesFrom": None,
        "CapAdd": None,
        "CapDrop": None,
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
        "Privileged": False,
        "PublishAllPorts": False,
        "ReadonlyRootfs": False,
        "SecurityOpt": None,
        "Memory": 0,
        "MemorySwap": 0,
        "NanoCpus": 0,
        "CpuShares": 0,
        "Mounts": None,
        "Init": None,
    }


def merge_host_config(body: dict[str, Any] | None) -> dict[str, Any]:
    host_config = {key: value for key, value in (body or {}).items() if value is not None}
    merged = {**host_config_defaults(), **host_config}
    if merged.get("NetworkMode") in ("", "default"):
        merged["NetworkMode"] = "bridge"
    if not (merged.get("LogConfig") or {}).get("Type"):
        merged["LogConfig"] = {"Type": "json-file", "Config": {}}
    return merged


def new_id() -> str:
    return secrets.token_hex(32)


def _merge_env(image_env: list[str], container_env: list[str]) -> list[str]:
    env = list(image_env)
    for item in container_env:
        name = item.split("=", 1)[0]
        index = next((i for i, e in enumerate(env) if e.split("=", 1)[0] == name), None)
        if "=" not in item:  # a bare name unsets it
            if index is not None:
                del env[index]
        elif index is None:
            env.append(item)
        else:
            env[index] = item
    return env


def _duration(ns: int) -> str:
    seconds = max(ns, 0) // 1_000_000_000
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 120:
        return "About a minute"
    if seconds < 3600:
        return f"{seconds // 60} minutes"
    if seconds < 7200:
        return "About an hour"
    return f"{seconds // 3600} hours"
