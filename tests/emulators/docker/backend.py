"""The engine's state and the operations that span its parts (the moto `models` layer).

One condition (on a re-entrant lock) guards all of it: handlers run on the HTTP server's
threads and containers' supervisors on their own, and every state change notifies it, which is
what blocked waits and log follows wake on.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.emulators.docker import distribution
from tests.emulators.docker.builds import Builder, BuildFailure, BuildRecord
from tests.emulators.docker.distribution import PullRecord, PushDenial, PushRecord
from tests.emulators.docker.exceptions import DockerApiError, Unauthorized
from tests.emulators.docker.filesystem import Workspace
from tests.emulators.docker.images import Image, ImageStore
from tests.emulators.docker.networks import NetworkStore
from tests.emulators.docker.references import Reference
from tests.emulators.docker.registry import DEFAULT_BASE_IMAGES, Registry
from tests.emulators.docker.runtime import ContainerRuntime

__all__ = ["DockerBackend", "LoginRecord", "RecordedRequest"]

Event = dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the /v1.NN prefix
    api_version: str | None  # the prefix's version, None when unversioned
    query: dict[str, list[str]]
    headers: dict[str, str]  # as sent, minus hop-by-hop ones
    body_size: int

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


@dataclass
class LoginRecord:
    username: str
    password: str
    serveraddress: str
    ok: bool = True
    body: dict[str, Any] = field(default_factory=dict)


class DockerBackend:
    def __init__(
        self,
        root: Path,
        base_images: Mapping[tuple[str, ...], Mapping[str, Any]] = DEFAULT_BASE_IMAGES,
    ) -> None:
        self.changed = threading.Condition(threading.RLock())
        self.workspace = Workspace(root)
        self.images = ImageStore()
        self.registry = Registry(self.workspace, base_images)
        self.networks = NetworkStore()
        self.image_python: dict[str, str] = {}
        self.runtime = ContainerRuntime(
            self.images, self.networks, self.workspace, self.changed, self.image_python
        )
        self.build_failures: list[BuildFailure] = []
        self.push_denials: list[PushDenial] = []
        self.builder = Builder(self.images, self.workspace, self._pull_base, self.build_failures)
        self.requests: list[RecordedRequest] = []
        self.builds: list[BuildRecord] = []
        self.pulls: list[PullRecord] = []
        self.pushes: list[PushRecord] = []
        self.logins: list[LoginRecord] = []
        # Exceptions inside handlers (answered 500): a test can assert there were none.
        self.errors: list[str] = []

    def build(self, record: BuildRecord, archive: bytes) -> list[Event]:
        with self.changed:
            self.builds.append(record)
            return self.builder.build(record, archive)

    def _pull_base(
        self, reference: Reference, auth: Mapping[str, Any] | None
    ) -> tuple[Image, list[Event]]:
        record = PullRecord(reference.familiar(), dict(auth) if auth else None)
        self.pulls.append(record)
        try:
            return distribution.pull(self.images, self.registry, reference, auth)
        except DockerApiError as exc:
            record.error = exc.message
            raise

    def pull(
        self,
        reference: Reference,
        auth: Mapping[str, Any] | None,
        platform: str | None,
        *,
        all_tags: bool = False,
    ) -> list[Event]:
        with self.changed:
            if not all_tags:
                image, events = self._pull_base(reference, auth)
                self.pulls[-1].platform = platform
                return events
            events = []
            for tag in self.registry.tags(reference.name) or [""]:
                target = reference.with_tag(tag) if tag else reference
                events += self._pull_base(target, auth)[1]
                self.pulls[-1].platform = platform
            return events

    def push(self, reference: Reference, auth: Mapping[str, Any] | None) -> list[Event]:
        with self.changed:
            record = PushRecord(
                reference.familiar_name, reference.tag, dict(auth) if auth else None
            )
            self.pushes.append(record)
            return distribution.push(
                self.images, self.registry, reference, record, self.push_denials
            )

    def login(self, body: dict[str, Any]) -> dict[str, Any]:
        host = (body.get("serveraddress") or "docker.io").removeprefix("https://")
        host = host.split("/", 1)[0]
        if host == "index.docker.io":
            host = "docker.io"
        refusal = self.registry.auth_error(host, body)
        record = LoginRecord(
            username=body.get("username") or "",
            password=body.get("password") or "",
            serveraddress=body.get("serveraddress") or "",
            ok=refusal is None,
            body=dict(body),
        )
        self.logins.append(record)
        if refusal is not None:
            raise Unauthorized(f'Get "https://{host}/v2/": {refusal}')
        return {"Status": "Login Succeeded", "IdentityToken": ""}

    def remove_image(self, text: str, force: bool) -> list[dict[str, str]]:
        with self.changed:
            return self.images.remove(text, force=force, user_of=self.user_of)

    def user_of(self, image: Image) -> str | None:
        return next(
            (c.id for c in self.runtime.containers.values() if c.image.id == image.id), None
        )

    def shutdown(self) -> None:
        self.runtime.shutdown()
