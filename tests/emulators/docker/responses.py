"""The wire format of each operation: query and body in, the engine's JSON (or stream) out.

Method names are the Engine API's operation names in snake_case (SystemPing -> system_ping,
ImageBuild -> image_build, ...); urls.py maps routes to them.
"""

from __future__ import annotations

import fnmatch
import os
import platform as host_platform
import socket
from typing import Any

from tests.emulators.docker.backend import DockerBackend
from tests.emulators.docker.builds import BuildRecord
from tests.emulators.docker.exceptions import InvalidParameter, NotImplementedByEmulator
from tests.emulators.docker.filters import label_matches, parse_filters
from tests.emulators.docker.images import Image
from tests.emulators.docker.logs import LogQuery
from tests.emulators.docker.references import is_digest, parse_reference
from tests.emulators.docker.wire import (
    ApiRequest,
    ApiResponse,
    decode_auth,
    empty,
    json_lines,
    json_response,
    now_ns,
    rfc3339,
)

__all__ = ["API_VERSION", "ENGINE_VERSION", "MIN_API_VERSION", "DockerResponses"]

ENGINE_VERSION = "26.1.4"
API_VERSION = "1.45"  # what docker-py 7.2 defaults to, and what the engine answers with
MIN_API_VERSION = "1.24"
_GO_VERSION = "go1.21.11"


class DockerResponses:
    def __init__(self, backend: DockerBackend, engine_id: str) -> None:
        self.backend = backend
        self.engine_id = engine_id

    # ------------------------------------------------------------------ system

    def system_ping(self, request: ApiRequest) -> ApiResponse:
        return ApiResponse(body=b"OK", content_type="text/plain; charset=utf-8")

    def system_version(self, request: ApiRequest) -> ApiResponse:
        details = {
            "ApiVersion": API_VERSION,
            "Arch": "amd64",
            "BuildTime": "2024-06-05T11:31:43.000000000+00:00",
            "Experimental": "false",
            "GitCommit": "emulator",
            "GoVersion": _GO_VERSION,
            "KernelVersion": host_platform.release(),
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
        }
        return json_response(
            {
                "Platform": {"Name": "Docker Engine - Community"},
                "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": details}],
                "Version": ENGINE_VERSION,
                **{key: value for key, value in details.items() if key != "Experimental"},
            }
        )

    def system_info(self, request: ApiRequest) -> ApiResponse:
        backend = self.backend
        with backend.changed:
            containers = list(backend.runtime.containers.values())
            image_count = len(backend.images.images)
        running = sum(1 for c in containers if c.running)
        return json_response(
            {
                "ID": self.engine_id,
                "Containers": len(containers),
                "ContainersRunning": running,
                "ContainersPaused": 0,
                "ContainersStopped": len(containers) - running,
                "Images": image_count,
                "Driver": "overlay2",
                "DriverStatus": [],
                "MemoryLimit": True,
                "SwapLimit": True,
                "Debug": False,
                "SystemTime": rfc3339(now_ns()),
                "LoggingDriver": "json-file",
                "CgroupDriver": "systemd",
                "CgroupVersion": "2",
                "KernelVersion": host_platform.release(),
                "OperatingSystem": "Docker Engine API emulator (push-pools tests)",
                "OSVersion": "",
                "OSType": "linux",
                "Architecture": "x86_64",
                "IndexServerAddress": "https://index.docker.io/v1/",
                "RegistryConfig": {
                    "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                    "IndexConfigs": {},
                    "Mirrors": [],
                },
                "NCPU": os.cpu_count() or 1,
                "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                "DockerRootDir": "/var/lib/docker",
                "Name": socket.gethostname(),
                "Labels": [],
                "ExperimentalBuild": False,
                "ServerVersion": ENGINE_VERSION,
                "Runtimes": {"runc": {"path": "runc"}},
                "DefaultRuntime": "runc",
                "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive"},
                "LiveRestoreEnabled": False,
                "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
                "Warnings": None,
            }
        )

    def system_auth(self, request: ApiRequest) -> ApiResponse:
        body = request.json()
        return json_response(self.backend.login(body if isinstance(body, dict) else {}))

    # ------------------------------------------------------------------ images

    def image_build(self, request: ApiRequest) -> ApiResponse:
        if request.param("remote"):
            raise NotImplementedByEmulator("remote build contexts are not supported here")
        labels = request.json_param("labels") or {}
        buildargs = request.json_param("buildargs") or {}
        record = BuildRecord(
            tags=[parse_reference(tag).tagged() for tag in request.params("t")],
            dockerfile=request.param("dockerfile") or "Dockerfile",
            buildargs={str(k): None if v is None else str(v) for k, v in buildargs.items()},
            labels={str(k): str(v) for k, v in labels.items()},
            platform=request.param("platform") or None,
            nocache=request.flag("nocache"),
            pull=request.flag("pull"),
            quiet=request.flag("q"),
            target=request.param("target") or None,
            params=request.query,
            registry_config=decode_auth(request.header("X-Registry-Config")),
        )
        return json_lines(self.backend.build(record, request.body))

    def image_list(self, request: ApiRequest) -> ApiResponse:
        filters = parse_filters(request.param("filters"))
        store = self.backend.images
        with self.backend.changed:
            images = sorted(store.images.values(), key=lambda i: i.created_ns, reverse=True)
            answer = [
                self._image_summary(image)
                for image in images
                if self._image_matches(image, filters)
            ]
        return json_response(answer)

    def _image_matches(self, image: Image, filters: dict[str, list[str]]) -> bool:
        tags = self.backend.images.repo_tags(image)
        for pattern in filters.get("reference", []):
            names = [(tag, tag.rsplit(":", 1)[0]) for tag in tags]
            if not any(
                fnmatch.fnmatchcase(t, pattern) or fnmatch.fnmatchcase(n, pattern) for t, n in names
            ):
                return False
        for wanted in filters.get("label", []):
            if not label_matches(image.config.labels, wanted):
                return False
        for dangling in filters.get("dangling", []):
            if (dangling.lower() in ("1", "true")) != (not tags):
                return False
        return True

    def _image_summary(self, image: Image) -> dict[str, Any]:
        store = self.backend.images
        return {
            "Id": image.id,
            "ParentId": image.parent,
            "RepoTags": store.repo_tags(image),
            "RepoDigests": store.repo_digests(image),
            "Created": image.created_ns // 1_000_000_000,
            "Size": image.size,
            "SharedSize": -1,
            "Labels": image.config.labels or {},
            "Containers": -1,
        }

    def image_inspect(self, request: ApiRequest) -> ApiResponse:
        store = self.backend.images
        with self.backend.changed:
            image = store.get(request.match["name"])
            return json_response(
                {
                    "Id": image.id,
                    "RepoTags": store.repo_tags(image),
                    "RepoDigests": store.repo_digests(image),
                    "Parent": image.parent,
                    "Comment": "",
                    "Created": rfc3339(image.created_ns),
                    "DockerVersion": "",
                    "Author": "",
                    "Config": image.config.to_api(),
                    "Architecture": image.architecture,
                    "Os": image.os,
                    "Size": image.size,
                    "GraphDriver": {"Data": None, "Name": "overlay2"},
                    "RootFS": {
                        "Type": "layers",
                        "Layers": [layer.digest for layer in image.layers],
                    },
                    "Metadata": {"LastTagTime": rfc3339(store.tag_times.get(image.id))},
                }
            )

    def image_history(self, request: ApiRequest) -> ApiResponse:
        with self.backend.changed:
            image = self.backend.images.get(request.match["name"])
        entries = [
            {
                "Id": "<missing>",
                "Created": image.created_ns // 1_000_000_000,
                "CreatedBy": entry.get("created_by", ""),
                "Tags": None,
                "Size": 0,
                "Comment": "",
            }
            for entry in reversed(image.history)
        ]
        if entries:
            entries[0]["Id"] = image.id
        return json_response(entries)

    def image_tag(self, request: ApiRequest) -> ApiResponse:
        repo = request.param("repo") or ""
        tag = request.param("tag") or ""
        if not repo:
            raise InvalidParameter("repository name must have at least one component")
        reference = parse_reference(f"{repo}:{tag}" if tag else repo).tagged()
        with self.backend.changed:
            image = self.backend.images.get(request.match["name"])
            self.backend.images.tag(image, reference)
        return empty(201)

    def image_delete(self, request: ApiRequest) -> ApiResponse:
        removed = self.backend.remove_image(request.match["name"], request.flag("force"))
        return json_response(removed)

    def image_create(self, request: ApiRequest) -> ApiResponse:
        if request.param("fromSrc") is not None:
            raise NotImplementedByEmulator("importing images is not supported here")
        from_image = request.param("fromImage") or ""
        if not from_image:
            raise InvalidParameter("fromImage must not be empty")
        reference = parse_reference(from_image)
        tag = request.param("tag") or ""
        if tag:
            reference = reference.with_digest(tag) if is_digest(tag) else reference.with_tag(tag)
        auth = decode_auth(request.header("X-Registry-Auth"))
        all_tags = not (reference.tag or reference.digest)
        events = self.backend.pull(
            reference, auth, request.param("platform") or None, all_tags=all_tags
        )
        return json_lines(events)

    def image_push(self, request: ApiRequest) -> ApiResponse:
        reference = parse_reference(request.match["name"])
        tag = request.param("tag") or ""
        reference = reference.with_tag(tag) if tag else reference
        auth = decode_auth(request.header("X-Registry-Auth"))
        return json_lines(self.backend.push(reference, auth))

    def image_prune(self, request: ApiRequest) -> ApiResponse:
        deleted: list[dict[str, str]] = []
        with self.backend.changed:
            for image in list(self.backend.images.images.values()):
                if not self.backend.images.repo_tags(image) and not self.backend.user_of(image):
                    deleted += self.backend.remove_image(image.id, False)
        return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": 0})

    def build_prune(self, request: ApiRequest) -> ApiResponse:
        return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})

    # ------------------------------------------------------------------ containers

    def container_create(self, request: ApiRequest) -> ApiResponse:
        body = request.json()
        if not isinstance(body, dict):
            raise InvalidParameter("the body must be a container config object")
        container = self.backend.runtime.create(
            body, request.param("name") or None, request.param("platform") or None
        )
        return json_response({"Id": container.id, "Warnings": []}, status=201)

    def container_list(self, request: ApiRequest) -> ApiResponse:
        runtime = self.backend.runtime
        found = runtime.list_containers(
            all_=request.flag("all"),
            filters=parse_filters(request.param("filters")),
            limit=request.int_param("limit", -1),
        )
        with self.backend.changed:
            return json_response([c.summary(runtime.network_settings(c)) for c in found])

    def container_inspect(self, request: ApiRequest) -> ApiResponse:
        runtime = self.backend.runtime
        container = runtime.get(request.match["id"])
        with self.backend.changed:
            return json_response(container.to_api(runtime.network_settings(container)))

    def container_start(self, request: ApiRequest) -> ApiResponse:
        runtime = self.backend.runtime
        runtime.start(runtime.get(request.match["id"]))
        return empty()

    def container_stop(self, request: ApiRequest) -> ApiResponse:
        runtime = self.backend.runtime
        seconds = request.param("t")
        runtime.stop(runtime.get(request.match["id"]), int(seconds) if seconds else None)
        return empty()

    def container_restart(self, request: ApiRequest) -> ApiResponse:
        runtime = self.backend.runtime
        container = runtime.get(request.match["id"])
        if container.running:
            seconds = request.param("t")
            runtime.stop(container, int(seconds) if seconds else None)
        runtime.start(container)
        return empty()

    def container_kill(self, request: ApiRequest) -> ApiResponse:
        runtime = self.backend.runtime
        runtime.kill(runtime.get(request.match["id"]), request.param("signal") or None)
        return empty()

    def container_wait(self, request: ApiRequest) -> ApiResponse:
        runtime = self.backend.runtime
        container = runtime.get(request.match["id"])
        result = runtime.wait(container, request.param("condition"), request.client_gone)
        if result is None:
            return ApiResponse(status=503, body=b'{"message": "the engine is stopping"}\n')
        return json_response(result)

    def container_logs(self, request: ApiRequest) -> ApiResponse:
        runtime = self.backend.runtime
        container = runtime.get(request.match["id"])
        query = LogQuery.from_request(request)
        content_type = (
            "application/vnd.docker.raw-stream"
            if container.tty
            else "application/vnd.docker.multiplexed-stream"
        )
        pieces = runtime.logs(container, query, request.client_gone)
        if query.follow:
            return ApiResponse(stream=pieces, content_type=content_type)
        return ApiResponse(body=b"".join(pieces), content_type=content_type)

    def container_delete(self, request: ApiRequest) -> ApiResponse:
        runtime = self.backend.runtime
        runtime.remove(runtime.get(request.match["id"]), request.flag("force"))
        return empty()

    def container_prune(self, request: ApiRequest) -> ApiResponse:
        runtime = self.backend.runtime
        removed = []
        for container in runtime.list_containers(all_=True, filters={}, limit=-1):
            if not container.running:
                runtime.remove(container, force=False)
                removed.append(container.id)
        return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})

    # ------------------------------------------------------------------ networks

    def network_list(self, request: ApiRequest) -> ApiResponse:
        filters = parse_filters(request.param("filters"))
        with self.backend.changed:
            found = self.backend.networks.list_networks(filters)
            return json_response([network.to_api(with_containers=False) for network in found])

    def network_inspect(self, request: ApiRequest) -> ApiResponse:
        with self.backend.changed:
            return json_response(self.backend.networks.get(request.match["id"]).to_api())

    def network_create(self, request: ApiRequest) -> ApiResponse:
        body = request.json()
        with self.backend.changed:
            network = self.backend.networks.create(body if isinstance(body, dict) else {})
        return json_response({"Id": network.id, "Warning": ""}, status=201)

    def network_delete(self, request: ApiRequest) -> ApiResponse:
        with self.backend.changed:
            self.backend.networks.remove(request.match["id"])
        return empty()

    def network_connect(self, request: ApiRequest) -> ApiResponse:
        self.backend.runtime.connect(request.match["id"], request.json())
        return empty(200)

    def network_disconnect(self, request: ApiRequest) -> ApiResponse:
        self.backend.runtime.disconnect(request.match["id"], request.json())
        return empty(200)
