"""DockerEmulator: the Engine API on 127.0.0.1, with the controls and records tests use.

    with DockerEmulator() as engine:
        monkeypatch.setenv("DOCKER_HOST", engine.docker_host)   # docker.from_env() reaches it
        engine.fail_build_on("pip install")                       # that RUN fails, exit code 1
        engine.deny_push("123456789012.dkr.ecr.us-east-1.amazonaws.com", "token expired")
        engine.image_python["python:3.12-slim"] = "/usr/bin/python3"
        engine.registry.add("ghcr.io/acme/base:1", env=["A=1"], files={"/app/x.py": b"..."})
        ...
        engine.builds[-1].context       # {"flows/etl.py": b"...", ...}: what the SDK uploaded
        engine.pushes[-1].auth          # {"username": "AWS", "password": "...", ...}
        engine.image("acme/app:v1").files()   # {"/app/flows/etl.py": b"...", ...}
        engine.requests                 # every request: method, path, query, headers

Unset DOCKER_TLS_VERIFY and DOCKER_CERT_PATH too: the emulator speaks plain HTTP.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.emulators.docker.backend import DockerBackend, LoginRecord, RecordedRequest
from tests.emulators.docker.builds import BuildFailure, BuildRecord
from tests.emulators.docker.containers import DockerContainer
from tests.emulators.docker.distribution import PullRecord, PushDenial, PushRecord
from tests.emulators.docker.images import Image
from tests.emulators.docker.registry import DEFAULT_BASE_IMAGES, Registry
from tests.emulators.docker.server import EngineServer

__all__ = ["DockerEmulator"]


class DockerEmulator:
    def __init__(
        self,
        *,
        port: int = 0,
        base_images: Mapping[tuple[str, ...], Mapping[str, Any]] = DEFAULT_BASE_IMAGES,
    ) -> None:
        self._requested_port = port
        self._base_images = base_images
        # Removed on stop (or, for an emulator never stopped, when it is collected).
        self._tmp = tempfile.TemporaryDirectory(
            prefix="docker-emulator-", ignore_cleanup_errors=True
        )
        self._root = Path(self._tmp.name)
        self.backend = DockerBackend(self._root / "state", base_images)
        self._server: EngineServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> DockerEmulator:
        self._server = EngineServer(
            ("127.0.0.1", self._requested_port), self.backend, secrets.token_hex(16)
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="docker-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.backend.shutdown()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
        self._tmp.cleanup()

    def reset(self) -> None:
        """Forget every image, container, network, record and control; keep serving."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        self.backend.shutdown()
        old = self.backend
        state = self._root / f"state-{secrets.token_hex(4)}"
        self.backend = DockerBackend(state, self._base_images)
        self._server.backend = self.backend
        self._server.responses.backend = self.backend
        shutil.rmtree(old.workspace.root, ignore_errors=True)

    def __enter__(self) -> DockerEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def docker_host(self) -> str:
        """DOCKER_HOST for docker.from_env()."""
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For docker.DockerClient(base_url=...)."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ controls

    def fail_build_on(
        self,
        text: str,
        *,
        output: tuple[str, ...] = BuildFailure.output,
        exit_code: int = 1,
    ) -> None:
        """A RUN whose command contains `text` prints `output` and fails with `exit_code`."""
        self.backend.build_failures.append(BuildFailure(text, tuple(output), exit_code))

    def deny_push(
        self, registry_or_repo: str, message: str = "requested access to the resource is denied"
    ) -> None:
        """Pushes to this registry host or repository stream `denied: <message>` errors."""
        self.backend.push_denials.append(PushDenial(registry_or_repo, message))

    @property
    def registry(self) -> Registry:
        return self.backend.registry

    @property
    def image_python(self) -> dict[str, str]:
        """Image reference -> interpreter that a leading `python` in its containers runs."""
        return self.backend.image_python

    # ------------------------------------------------------------------ records and state

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.backend.requests

    @property
    def builds(self) -> list[BuildRecord]:
        return self.backend.builds

    @property
    def pulls(self) -> list[PullRecord]:
        return self.backend.pulls

    @property
    def pushes(self) -> list[PushRecord]:
        return self.backend.pushes

    @property
    def logins(self) -> list[LoginRecord]:
        return self.backend.logins

    @property
    def errors(self) -> list[str]:
        """Tracebacks of emulator bugs (answered 500); empty in a healthy run."""
        return self.backend.errors

    def image(self, reference: str) -> Image:
        """A local image by tag, digest or id; KeyError if there is none."""
        with self.backend.changed:
            image = self.backend.images.find(reference)
        if image is None:
            raise KeyError(reference)
        return image

    @property
    def images(self) -> list[Image]:
        with self.backend.changed:
            return list(self.backend.images.images.values())

    def container(self, name_or_id: str) -> DockerContainer:
        """A container by name or id; KeyError once it is removed."""
        found = self.backend.runtime.find(name_or_id)
        if found is None:
            raise KeyError(name_or_id)
        return found

    @property
    def containers(self) -> list[DockerContainer]:
        with self.backend.changed:
            return list(self.backend.runtime.containers.values())
