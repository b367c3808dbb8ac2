"""The registries the engine pulls from and pushes to, all in one object.

Images in it pull fine (by tag or by `name@sha256:digest`); anything else fails with the
engine's messages. A push stores the image under its tag and its manifest digest. By default it
holds a few official images (python in its common tags, debian, ubuntu, alpine, busybox) with
the config their publishers give them, so `FROM python:3.12-slim` builds; their filesystems are
empty. `require_auth` makes a registry host accept only given credentials.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tests.emulators.docker.filesystem import Workspace, inside
from tests.emulators.docker.images import Image, ImageConfig, Layer, make_image
from tests.emulators.docker.references import Reference, parse_reference

__all__ = ["DEFAULT_BASE_IMAGES", "Registry", "RegistryError"]

_PATH = "PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DEBIAN_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SEEDED_AT_NS = 1_727_740_800_000_000_000  # 2024-10-01: fixed, so seeded ids never change
_PYTHONS = {
    "3.9": "3.9.20",
    "3.10": "3.10.15",
    "3.11": "3.11.10",
    "3.12": "3.12.7",
    "3.13": "3.13.0",
}


def _official_images() -> dict[tuple[str, ...], dict[str, Any]]:
    """Tags that name the same image -> that image's config."""
    images: dict[tuple[str, ...], dict[str, Any]] = {}
    for minor, patch in _PYTHONS.items():
        env = [_PATH, "LANG=C.UTF-8", f"PYTHON_VERSION={patch}"]
        latest = minor == "3.13"
        for variant in ("", "-slim"):
            tags = [f"python:{minor}{variant}", f"python:{patch}{variant}"]
            tags.append(f"python:{minor}{variant}-bookworm")
            if latest:
                tags += [f"python:3{variant}", "python:latest" if not variant else "python:slim"]
            images[tuple(tags)] = {"env": env, "cmd": ["python3"]}
    images[("debian:bookworm", "debian:12", "debian:latest")] = {"env": [_DEBIAN_PATH]}
    images[("debian:bookworm-slim", "debian:12-slim")] = {"env": [_DEBIAN_PATH]}
    images[("ubuntu:24.04", "ubuntu:noble", "ubuntu:latest")] = {"cmd": ["/bin/bash"]}
    images[("ubuntu:22.04", "ubuntu:jammy")] = {"cmd": ["/bin/bash"]}
    images[("alpine:3.20", "alpine:latest")] = {"cmd": ["/bin/sh"]}
    images[("busybox:latest", "busybox:1.36")] = {"cmd": ["sh"]}
    for config in images.values():
        config.setdefault("env", [_DEBIAN_PATH])
        config.setdefault("cmd", ["bash"])
    return images


DEFAULT_BASE_IMAGES: Mapping[tuple[str, ...], Mapping[str, Any]] = MappingProxyType(
    _official_images()
)


class RegistryError(Exception):
    """A pull or push the registry refuses; `status` is what the engine answers a pull with."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Repository:
    tags: dict[str, str] = field(default_factory=dict)  # tag -> manifest digest
    manifests: dict[str, Image] = field(default_factory=dict)  # digest -> image


class Registry:
    def __init__(
        self,
        workspace: Workspace,
        base_images: Mapping[tuple[str, ...], Mapping[str, Any]] = DEFAULT_BASE_IMAGES,
    ) -> None:
        self.workspace = workspace
        self.repositories: dict[str, Repository] = {}  # full name -> repository
        self.credentials: dict[str, tuple[str, str]] = {}  # registry host -> (user, password)
        for tags, config in base_images.items():
            self.add(*tags, **config, created_ns=_SEEDED_AT_NS)

    def add(
        self,
        *references: str,
        env: Iterable[str] = (_DEBIAN_PATH,),
        cmd: list[str] | None = None,
        entrypoint: list[str] | None = None,
        working_dir: str = "",
        labels: Mapping[str, str] | None = None,
        user: str = "",
        files: Mapping[str, bytes] | None = None,
        architecture: str = "amd64",
        created_ns: int | None = None,
    ) -> Image:
        """Make an image pullable under each of `references` (tags of the same content)."""
        rootfs = self.workspace.new_dir("registry-image-")
        for path, content in (files or {}).items():
            target = inside(rootfs, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        listing = "\n".join(sorted(references)) + "".join(
            f"\n{path}:{hashlib.sha256(content).hexdigest()}"
            for path, content in sorted((files or {}).items())
        )
        # One layer whose digest stands for the content; the size is a base image's order.
        layer = Layer("sha256:" + hashlib.sha256(listing.encode()).hexdigest(), 28_000_000)
        config = ImageConfig(
            env=list(env),
            cmd=cmd,
            entrypoint=entrypoint,
            working_dir=working_dir,
            labels=dict(labels or {}),
            user=user,
        )
        image = make_image(
            config,
            rootfs,
            layers=(layer,),
            history=({"created_by": f"/bin/sh -c #(nop) ADD file:{layer.digest[7:19]} in / "},),
            created_ns=created_ns,
            architecture=architecture,
        )
        for text in references:
            self.put(parse_reference(text).tagged(), image)
        return image

    def put(self, reference: Reference, image: Image) -> str:
        """Store `image` under the reference's tag; its manifest digest."""
        repository = self.repositories.setdefault(reference.name, Repository())
        repository.manifests[image.digest] = image
        if reference.tag:
            repository.tags[reference.tag] = image.digest
        return image.digest

    def resolve(self, reference: Reference) -> tuple[Image, str]:
        """The image and digest a pull of `reference` gets; RegistryError as the engine says."""
        repository = self.repositories.get(reference.name)
        if repository is None:
            raise RegistryError(
                f"pull access denied for {reference.familiar_name}, repository does not exist "
                "or may require 'docker login': denied: requested access to the resource is "
                "denied"
            )
        reference = reference.tagged()
        digest = reference.digest or repository.tags.get(reference.tag or "")
        if digest is None or digest not in repository.manifests:
            raise RegistryError(
                f"manifest for {reference.familiar()} not found: manifest unknown: manifest unknown"
            )
        return repository.manifests[digest], digest

    def tags(self, name: str) -> list[str]:
        repository = self.repositories.get(parse_reference(name).name)
        return sorted(repository.tags) if repository else []

    def has_layer(self, name: str, digest: str) -> bool:
        repository = self.repositories.get(name)
        return repository is not None and any(
            layer.digest == digest
            for image in repository.manifests.values()
            for layer in image.layers
        )

    def require_auth(self, registry: str, username: str, password: str) -> None:
        """Pushes and pulls to this registry host need these credentials (X-Registry-Auth)."""
        self.credentials[registry] = (username, password)

    def auth_error(self, domain: str, auth: Mapping[str, Any] | None) -> str | None:
        """Why the registry refuses these credentials, in the engine's words; None if it takes
        them."""
        required = self.credentials.get(domain)
        if required is None:
            return None
        if not auth or not auth.get("username"):
            return "no basic auth credentials"
        if (auth.get("username"), auth.get("password")) != required:
            return "unauthorized: authentication required"
        return None

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        try:
            self.resolve(parse_reference(text))
        except RegistryError:
            return False
        return True
