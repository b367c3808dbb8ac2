"""Containers that run: each start is a local subprocess (tests.emulators.containers).

argv is Entrypoint + Cmd; the environment is the image's Env then the container's; the working
directory is a fresh directory holding the files the image has under the container's WorkingDir
(a restart keeps the previous run's directory, as a container keeps its filesystem); an argument
that is an absolute path to one of the image's files (`python /app/flow.py`) runs that file's
local copy (inspect still shows the path as given). A leading
`python` runs the interpreter `image_python` names for the image, its tags or the images it was
built FROM (this interpreter otherwise). Stop sends the stop signal (SIGTERM) to the process
group and SIGKILL after the grace period; the exit code is the process's (128+N after signal N).
A failed exec leaves the container created with exit code 127 (126 when not executable) and
answers 400 with the runtime's message, as the engine does.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.emulators.containers import Container as ContainerProcess
from tests.emulators.containers import signal_group
from tests.emulators.docker.containers import (
    DockerContainer,
    merge_config,
    merge_host_config,
    new_id,
)
from tests.emulators.docker.exceptions import (
    Conflict,
    DockerApiError,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotModified,
)
from tests.emulators.docker.filesystem import Workspace, clone_tree, inside
from tests.emulators.docker.filters import label_matches
from tests.emulators.docker.images import ImageStore
from tests.emulators.docker.logs import LogEntry, LogQuery
from tests.emulators.docker.networks import PREDEFINED, Endpoint, NetworkStore
from tests.emulators.docker.references import parse_reference
from tests.emulators.docker.wire import now_ns

__all__ = ["ContainerRuntime"]

_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_POLL_SECONDS = 0.2  # how often a blocked wait or follow checks whether its client left
_KILL_WAIT_SECONDS = 30.0
_ADJECTIVES = ("brave", "calm", "eager", "fond", "keen", "lucid", "quirky", "serene", "witty")
_SURNAMES = ("curie", "hopper", "lovelace", "noether", "ritchie", "shannon", "turing", "wing")


class ContainerRuntime:
    def __init__(
        self,
        images: ImageStore,
        networks: NetworkStore,
        workspace: Workspace,
        changed: threading.Condition,
        image_python: dict[str, str],
    ) -> None:
        self.images = images
        self.networks = networks
        self.workspace = workspace
        self.changed = changed  # guards all engine state; notified on every state change
        self.image_python = image_python
        self.default_python = sys.executable
        self.containers: dict[str, DockerContainer] = {}
        self.closing = False

    # ------------------------------------------------------------------ lookup

    def find(self, text: str) -> DockerContainer | None:
        """By full id, name (with or without its slash), or a unique id prefix."""
        with self.changed:
            if text in self.containers:
                return self.containers[text]
            name = text.removeprefix("/")
            for container in self.containers.values():
                if container.name == name:
                    return container
            found = [c for c in self.containers.values() if c.id.startswith(text)]
            return found[0] if len(found) == 1 and text else None

    def get(self, text: str) -> DockerContainer:
        container = self.find(text)
        if container is None:
            raise NotFound(f"No such container: {text}")
        return container

    # ------------------------------------------------------------------ create

    def create(
        self, body: dict[str, Any], name: str | None, platform: str | None
    ) -> DockerContainer:
        image_text = body.get("Image") or ""
        if not image_text:
            raise InvalidParameter("config.Image: image name must not be empty")
        with self.changed:
            image = self.images.find(image_text)
            if image is None:
                raise NotFound(f"No such image: {_familiar(image_text)}")
            if name:
                if not _NAME.fullmatch(name):
                    raise InvalidParameter(
                        f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                        "allowed"
                    )
                name = name.removeprefix("/")
                taken = next((c for c in self.containers.values() if c.name == name), None)
                if taken is not None:
                    raise Conflict(
                        f'Conflict. The container name "/{name}" is already in use by container '
                        f'"{taken.id}". You have to remove (or rename) that container to be able '
                        "to reuse that name."
                    )
            container_id = new_id()
            host_config = merge_host_config(body.get("HostConfig"))
            container = DockerContainer(
                id=container_id,
                name=name or self._random_name(container_id),
                image=image,
                config=merge_config(body, image, container_id),
                host_config=host_config,
                networks=self._requested_networks(body, host_config),
                platform=platform,
            )
            self.containers[container.id] = container
            self.changed.notify_all()
        return container

    def _requested_networks(
        self, body: dict[str, Any], host_config: dict[str, Any]
    ) -> dict[str, dict[str, Any]]:
        mode = host_config.get("NetworkMode") or "bridge"
        endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        wanted: dict[str, dict[str, Any]] = {}
        if not mode.startswith("container:") and mode not in endpoints:
            wanted[mode] = {}
        for network_name, settings in endpoints.items():
            wanted[network_name] = dict(settings or {})
        requested = {}
        for network_name, settings in wanted.items():
            network = self.networks.get(network_name)  # NotFound: "network X not found"
            requested[network.name] = settings
        return requested

    def _random_name(self, container_id: str) -> str:
        seed = int(container_id[:8], 16)
        return f"{_ADJECTIVES[seed % len(_ADJECTIVES)]}_{_SURNAMES[seed // 7 % len(_SURNAMES)]}"

    # ------------------------------------------------------------------ start, stop, kill

    def start(self, container: DockerContainer) -> None:
        with self.changed:
            if container.running:
                raise NotModified("container already started")
            python = self.python_for(container)
            env = container.env()
            env.setdefault("HOSTNAME", container.config.get("Hostname", ""))
            # The image's PATH, with its python first, as the image's python would be found.
            env["PATH"] = os.pathsep.join([str(Path(python).parent), env.get("PATH", os.defpath)])
            process = ContainerProcess(
                container.argv,
                env,
                on_line=lambda line: self._log(container, 1, line),
                on_stderr_line=None
                if container.tty
                else lambda line: self._log(container, 2, line),
                python=python,
                workdir_parent=str(self.workspace.root),
            )
            self._fill_workdir(container, Path(process.workdir))
            process.argv = self._local_argv(container, Path(process.workdir), process.argv)
            try:
                process.start()
            except OSError as exc:
                container.state.exit_code = 126 if isinstance(exc, PermissionError) else 127
                container.state.error = _exec_error(container.argv[0], exc)
                self.changed.notify_all()
                raise InvalidParameter(container.state.error) from exc
            assert process.popen is not None
            container.process = process
            container.workdir = process.workdir
            container.state.status = "running"
            container.state.pid = process.popen.pid
            container.state.error = ""
            container.state.started_ns = now_ns()
            container.state.finished_ns = None
            self._join_networks(container)
            self.changed.notify_all()
        threading.Thread(
            target=self._supervise, args=(container, process), name="docker-container", daemon=True
        ).start()

    def _fill_workdir(self, container: DockerContainer, workdir: Path) -> None:
        previous = Path(container.workdir) if container.workdir else None
        if previous is not None and previous.is_dir():
            clone_tree(previous, workdir)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            clone_tree(
                inside(container.image.rootfs, container.config["WorkingDir"] or "/"), workdir
            )

    def _local_argv(self, container: DockerContainer, workdir: Path, argv: list[str]) -> list[str]:
        """An argument that is an absolute path to a file the image has becomes that file's
        local copy: under the working directory, the container's own; else the image's."""
        image_workdir = posixpath.normpath(container.config["WorkingDir"] or "/")
        local = []
        for arg in argv:
            path = posixpath.normpath(arg) if arg.startswith("/") else ""
            relative = posixpath.relpath(path, image_workdir) if path else ""
            if path and not relative.startswith("..") and (workdir / relative).exists():
                local.append(str((workdir / relative).resolve()))
            elif path and path != "/" and inside(container.image.rootfs, path).exists():
                local.append(str(inside(container.image.rootfs, path)))
            else:
                local.append(arg)
        return local

    def _log(self, container: DockerContainer, stream: int, line: str) -> None:
        with self.changed:
            container.logs.append(LogEntry(now_ns(), stream, line))
            self.changed.notify_all()

    def _supervise(self, container: DockerContainer, process: ContainerProcess) -> None:
        code = process.wait()  # returns once the output is read to the end
        with self.changed:
            container.state.status = "exited"
            container.state.exit_code = code
            container.state.pid = 0
            container.state.finished_ns = now_ns()
            container.exits += 1
            self._leave_networks(container)
            self.changed.notify_all()
            auto_remove = bool(container.host_config.get("AutoRemove"))
        if auto_remove:
            self._forget(container)

    def stop(self, container: DockerContainer, seconds: int | None) -> None:
        with self.changed:
            if not container.running:
                raise NotModified("container already stopped")
            pid = container.state.pid
        grace = seconds if seconds is not None else container.config.get("StopTimeout")
        stop_signal = parse_signal(container.config.get("StopSignal") or "SIGTERM")
        signal_group(pid, stop_signal)
        deadline = (
            None if grace is not None and grace < 0 else float(10 if grace is None else grace)
        )
        if not self._wait_until(lambda: not container.running, deadline):
            signal_group(pid, signal.SIGKILL)
            self._wait_until(lambda: not container.running, _KILL_WAIT_SECONDS)

    def kill(self, container: DockerContainer, signal_text: str | None) -> None:
        sig = parse_signal(signal_text or "SIGKILL")
        with self.changed:
            if not container.running:
                raise Conflict(
                    f"Cannot kill container: {container.name}: container {container.id} is not "
                    "running"
                )
            pid = container.state.pid
        signal_group(pid, sig)
        if sig == signal.SIGKILL:  # the engine answers a SIGKILL once the container is gone
            self._wait_until(lambda: not container.running, _KILL_WAIT_SECONDS)

    # ------------------------------------------------------------------ wait, logs, remove

    def wait(
        self, container: DockerContainer, condition: str | None, client_gone: Callable[[], bool]
    ) -> dict[str, Any] | None:
        """POST /containers/{id}/wait; None when the client left or the engine is stopping."""
        condition = condition or "not-running"
        with self.changed:
            if condition == "not-running":
                done: Callable[[], bool] = lambda: not container.running  # noqa: E731
            elif condition == "next-exit":
                target = container.exits + 1
                done = lambda: container.exits >= target or container.removed  # noqa: E731
            elif condition == "removed":
                done = lambda: container.removed  # noqa: E731
            else:
                raise InvalidParameter(f'invalid condition: "{condition}"')
            while not done():
                if client_gone() or self.closing:
                    return None
                self.changed.wait(_POLL_SECONDS)
            error = container.state.error
            return {
                "StatusCode": container.state.exit_code,
                "Error": {"Message": error} if error else None,
            }

    def logs(
        self, container: DockerContainer, query: LogQuery, client_gone: Callable[[], bool]
    ) -> Iterator[bytes]:
        with self.changed:
            backlog = [entry for entry in container.logs if query.selects(entry)]
            position = len(container.logs)
        if query.tail is not None:
            backlog = backlog[len(backlog) - query.tail :] if query.tail else []
        for entry in backlog:
            yield query.encode(entry, tty=container.tty)
        while query.follow:
            with self.changed:
                while position == len(container.logs) and container.running:
                    if client_gone() or self.closing:
                        return
                    self.changed.wait(_POLL_SECONDS)
                fresh = container.logs[position:]
                position = len(container.logs)
                finished = not container.running
            for entry in fresh:
                if query.selects(entry):
                    yield query.encode(entry, tty=container.tty)
            if finished:
                return

    def remove(self, container: DockerContainer, force: bool) -> None:
        with self.changed:
            running, pid = container.running, container.state.pid
        if running:
            if not force:
                raise Conflict(
                    f'cannot remove container "/{container.name}": container is running: stop the '
                    "container before removing or force remove"
                )
            signal_group(pid, signal.SIGKILL)
            self._wait_until(lambda: not container.running, _KILL_WAIT_SECONDS)
        self._forget(container)

    def _forget(self, container: DockerContainer) -> None:
        with self.changed:
            if container.removed:
                return
            container.removed = True
            self._leave_networks(container)
            self.containers.pop(container.id, None)
            self.changed.notify_all()
        if container.workdir:
            shutil.rmtree(container.workdir, ignore_errors=True)

    def _wait_until(self, predicate: Callable[[], bool], seconds: float | None) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, seconds)

    # ------------------------------------------------------------------ networks

    def network_settings(self, container: DockerContainer) -> dict[str, dict[str, Any]]:
        settings = {}
        for name, requested in container.networks.items():
            network = self.networks.find(name, exact=True)
            endpoint = network.endpoints.get(container.id) if network else None
            settings[name] = {
                "IPAMConfig": requested.get("IPAMConfig"),
                "Links": requested.get("Links"),
                "Aliases": requested.get("Aliases"),
                "MacAddress": endpoint.mac if endpoint else "",
                "NetworkID": network.id if network else "",
                "EndpointID": endpoint.endpoint_id if endpoint else "",
                "Gateway": network.gateway if network and endpoint else "",
                "IPAddress": endpoint.ip if endpoint else "",
                "IPPrefixLen": network.prefix_length if network and endpoint else 0,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "DriverOpts": requested.get("DriverOpts"),
                "DNSNames": [container.name, container.id[:12]] if endpoint else None,
            }
        return settings

    def connect(self, network_text: str, body: dict[str, Any]) -> None:
        network = self.networks.get(network_text)
        container = self.get(body.get("Container") or "")
        with self.changed:
            if network.name in container.networks:
                raise Forbidden(
                    f"endpoint with name {container.name} already exists in network {network.name}"
                )
            container.networks[network.name] = dict(body.get("EndpointConfig") or {})
            if container.running:
                self._attach(container, network.name)
            self.changed.notify_all()

    def disconnect(self, network_text: str, body: dict[str, Any]) -> None:
        network = self.networks.get(network_text)
        container = self.get(body.get("Container") or "")
        with self.changed:
            if network.name not in container.networks:
                raise Forbidden(
                    f"container {container.id} is not connected to network {network.name}"
                )
            del container.networks[network.name]
            network.endpoints.pop(container.id, None)
            self.changed.notify_all()

    def _join_networks(self, container: DockerContainer) -> None:
        for name in container.networks:
            self._attach(container, name)

    def _attach(self, container: DockerContainer, name: str) -> None:
        network = self.networks.find(name, exact=True)
        if network is None or name == "none":
            return
        aliases = list(container.networks[name].get("Aliases") or [])
        endpoint = Endpoint(container.id, container.name, aliases)
        if name not in PREDEFINED or name == "bridge":
            endpoint.ip, endpoint.mac = network.allocate()
        network.endpoints[container.id] = endpoint

    def _leave_networks(self, container: DockerContainer) -> None:
        for network in self.networks.networks.values():
            network.endpoints.pop(container.id, None)

    # ------------------------------------------------------------------ list, python, shutdown

    def list_containers(
        self, *, all_: bool, filters: dict[str, list[str]], limit: int
    ) -> list[DockerContainer]:
        show_all = all_ or "status" in filters or "exited" in filters or limit > 0
        with self.changed:
            found = sorted(self.containers.values(), key=lambda c: c.created_ns, reverse=True)
            found = [c for c in found if (show_all or c.running) and self._matches(c, filters)]
        return found[:limit] if limit > 0 else found

    def _matches(self, container: DockerContainer, filters: dict[str, list[str]]) -> bool:
        checks: dict[str, Callable[[str], bool]] = {
            "id": lambda v: container.id.startswith(v),
            "name": lambda v: (
                re.search(v, container.name) is not None
                or re.search(v, f"/{container.name}") is not None
            ),
            "label": lambda v: label_matches(container.config.get("Labels"), v),
            "status": lambda v: container.state.status == v,
            "exited": lambda v: (
                container.state.status == "exited" and str(container.state.exit_code) == v
            ),
            "ancestor": lambda v: self._descends_from(container, v),
            "network": lambda v: any(
                v == name
                or (n := self.networks.find(name, exact=True)) is not None
                and n.id.startswith(v)
                for name in container.networks
            ),
        }
        for key, values in filters.items():
            check = checks.get(key)
            # Several labels must all match; several values of another key, any one.
            combine = all if key == "label" else any
            if check is not None and not combine(check(value) for value in values):
                return False
        return True

    def _descends_from(self, container: DockerContainer, text: str) -> bool:
        wanted = self.images.find(text)
        if wanted is None:
            return False
        image = container.image
        for _ in range(32):
            if image.id == wanted.id:
                return True
            parent = self.images.images.get(image.parent) if image.parent else None
            if parent is None:
                return False
            image = parent
        return False

    def python_for(self, container: DockerContainer) -> str:
        """The interpreter a leading `python` runs: image_python's entry for the image as
        created, its names, or an image it was built from; this interpreter otherwise."""
        wanted = {_familiar(key): value for key, value in self.image_python.items()}
        names = [container.config.get("Image", ""), container.image.id]
        image = container.image
        for _ in range(32):
            names += self.images.repo_tags(image)
            names.append(image.base)
            parent = self.images.find(image.base) if image.base else None
            if parent is None or parent.id == image.id:
                break
            image = parent
        for name in names:
            if name and _familiar(name) in wanted:
                return wanted[_familiar(name)]
        return self.default_python

    def shutdown(self) -> None:
        """Kill every running container (the engine is going away)."""
        with self.changed:
            self.closing = True
            processes = [c.state.pid for c in self.containers.values() if c.running]
            self.changed.notify_all()
        for pid in processes:
            signal_group(pid, signal.SIGKILL)


def parse_signal(text: str | int) -> signal.Signals:
    value = str(text).upper()
    try:
        if value.isdigit():
            return signal.Signals(int(value))
        return signal.Signals[value if value.startswith("SIG") else f"SIG{value}"]
    except (KeyError, ValueError) as exc:
        raise InvalidParameter(f"Invalid signal: {text}") from exc


def _familiar(text: str) -> str:
    try:
        return parse_reference(text).tagged().familiar()
    except DockerApiError:
        return text


def _exec_error(program: str, exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        detail = f'exec: "{program}": permission denied'
    elif "/" in program:
        detail = f'exec: "{program}": stat {program}: no such file or directory'
    else:
        detail = f'exec: "{program}": executable file not found in $PATH'
    return (
        "failed to create task for container: failed to create shim task: OCI runtime create "
        f"failed: runc create failed: unable to start container process: {detail}: unknown"
    )
