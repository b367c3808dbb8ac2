"""Local images: content (config, layers, a directory tree) and the names that point at them.

An image's id is the sha256 of its config blob, as the engine's content-addressed store makes it;
its registry digest is the sha256 of a manifest listing that config and its layers, so pushing
the same image twice gives the same digest. Tags and repo digests live in the store, not in the
image, because a registry and the local store name the same content differently.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.emulators.docker.exceptions import Conflict, InvalidParameter, NotFound
from tests.emulators.docker.filesystem import read_tree
from tests.emulators.docker.references import Reference, parse_reference
from tests.emulators.docker.wire import rfc3339

__all__ = ["Image", "ImageConfig", "ImageStore", "Layer", "make_image"]

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_HEX_ID = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})")


@dataclass
class ImageConfig:
    """The runnable part of an image config (what Dockerfile instructions set)."""

    env: list[str] = field(default_factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    user: str = ""
    exposed_ports: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    stop_signal: str = ""
    shell: list[str] | None = None
    healthcheck: dict[str, Any] | None = None
    on_build: list[str] = field(default_factory=list)

    def env_dict(self) -> dict[str, str]:
        pairs = (item.partition("=") for item in self.env)
        return {name: value for name, _, value in pairs}

    def set_env(self, name: str, value: str) -> None:
        entry = f"{name}={value}"
        for index, item in enumerate(self.env):
            if item.split("=", 1)[0] == name:
                self.env[index] = entry
                return
        self.env.append(entry)

    def to_api(self) -> dict[str, Any]:
        """The engine's ContainerConfig shape, as image inspect shows it."""
        return {
            "Hostname": "",
            "Domainname": "",
            "User": self.user,
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "ExposedPorts": self.exposed_ports or None,
            "Tty": False,
            "OpenStdin": False,
            "StdinOnce": False,
            "Env": list(self.env),
            "Cmd": self.cmd,
            "Healthcheck": self.healthcheck,
            "Image": "",
            "Volumes": self.volumes or None,
            "WorkingDir": self.working_dir,
            "Entrypoint": self.entrypoint,
            "OnBuild": self.on_build or None,
            "Labels": dict(self.labels) or None,
            **({"StopSignal": self.stop_signal} if self.stop_signal else {}),
            **({"Shell": self.shell} if self.shell else {}),
        }


@dataclass(frozen=True)
class Layer:
    digest: str  # sha256:<hex> of the layer's content listing
    size: int


@dataclass(frozen=True)
class Image:
    """Immutable image content. `rootfs` holds its files; `base` is the FROM reference it was
    built on (familiar form), so a lookup by base image (image_python) reaches derived images."""

    id: str
    config: ImageConfig
    rootfs: Path
    layers: tuple[Layer, ...]
    history: tuple[dict[str, Any], ...]
    created_ns: int
    architecture: str = "amd64"
    os: str = "linux"
    parent: str = ""
    base: str = ""
    cache_key: str = ""

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def files(self) -> dict[str, bytes]:
        """Every file COPY/ADD put in the image, by absolute path."""
        return read_tree(self.rootfs)

    def manifest(self) -> bytes:
        document = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": CONFIG_TYPE,
                "size": len(config_blob(self)),
                "digest": self.id,
            },
            "layers": [
                {"mediaType": LAYER_TYPE, "size": layer.size, "digest": layer.digest}
                for layer in self.layers
            ],
        }
        return json.dumps(document, indent=3).encode()

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest()).hexdigest()


def make_image(
    config: ImageConfig,
    rootfs: Path,
    *,
    layers: tuple[Layer, ...] = (),
    history: tuple[dict[str, Any], ...] = (),
    created_ns: int | None = None,
    architecture: str = "amd64",
    os: str = "linux",
    parent: str = "",
    base: str = "",
    cache_key: str = "",
) -> Image:
    image = Image(
        id="",
        config=config,
        rootfs=rootfs,
        layers=layers,
        history=history,
        created_ns=time.time_ns() if created_ns is None else created_ns,
        architecture=architecture,
        os=os,
        parent=parent,
        base=base,
        cache_key=cache_key,
    )
    blob = config_blob(image)
    return replace(image, id="sha256:" + hashlib.sha256(blob).hexdigest())


def config_blob(image: Image) -> bytes:
    document = {
        "architecture": image.architecture,
        "os": image.os,
        "created": rfc3339(image.created_ns),
        "config": image.config.to_api(),
        "history": list(image.history),
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in image.layers]},
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class ImageStore:
    """The engine's local images: by id, by `name:tag` and by `name@digest`."""

    def __init__(self) -> None:
        self.images: dict[str, Image] = {}
        self.tags: dict[str, str] = {}  # full reference -> image id
        self.digests: dict[str, str] = {}  # name@digest -> image id
        self.tag_times: dict[str, int] = {}  # image id -> when it was last tagged

    def add(self, image: Image) -> Image:
        return self.images.setdefault(image.id, image)

    def tag(self, image: Image, reference: Reference) -> None:
        self.add(image)
        self.tags[str(reference.tagged())] = image.id
        self.tag_times[image.id] = time.time_ns()

    def add_digest(self, image: Image, name: str, digest: str) -> None:
        self.add(image)
        self.digests[f"{name}@{digest}"] = image.id

    def find(self, text: str) -> Image | None:
        """By id (full, `sha256:`-prefixed or a unique prefix), by tag or by digest."""
        if text.startswith("sha256:") and len(text) == 71:
            return self.images.get(text)
        try:
            reference = parse_reference(text)
        except InvalidParameter:
            reference = None
        if reference is not None:
            key = str(reference) if reference.digest else str(reference.tagged())
            image_id = (self.digests if reference.digest else self.tags).get(key)
            if image_id is not None:
                return self.images[image_id]
        match = _HEX_ID.fullmatch(text)
        if match:
            found = [image for image in self.images.values() if image.id[7:].startswith(match[1])]
            if len(found) == 1:
                return found[0]
        return None

    def get(self, text: str) -> Image:
        image = self.find(text)
        if image is None:
            raise NotFound(f"No such image: {text}")
        return image

    def repo_tags(self, image: Image) -> list[str]:
        return sorted(
            parse_reference(ref).familiar() for ref, id_ in self.tags.items() if id_ == image.id
        )

    def repo_digests(self, image: Image) -> list[str]:
        return sorted(
            parse_reference(ref).familiar() for ref, id_ in self.digests.items() if id_ == image.id
        )

    def tagged_in(self, name: str) -> list[tuple[str, Image]]:
        """(tag, image) for each tag of the repository `name` (full name)."""
        found = []
        for ref, image_id in sorted(self.tags.items()):
            reference = parse_reference(ref)
            if reference.name == name and reference.tag:
                found.append((reference.tag, self.images[image_id]))
        return found

    def remove(
        self, text: str, *, force: bool, user_of: Callable[[Image], str | None]
    ) -> list[dict[str, str]]:
        """DELETE /images/{name}, by the engine's rules: removing a name untags it (and the
        digests of its repository once no tag of it is left); the last name, or the id, deletes
        the image. A container using it (`user_of` names one) blocks that unless forced."""
        image = self.get(text)
        by_name = self._name_key(text)
        names = self._names(image)
        if by_name is not None:
            repository = parse_reference(by_name).name
            same_repo_tags = [
                n
                for n in names
                if n != by_name and n in self.tags and parse_reference(n).name == repository
            ]
            dropped = [by_name]
            if not same_repo_tags:
                dropped += [
                    n for n in names if n in self.digests and n.startswith(repository + "@")
                ]
            if len(names) > len(dropped):
                for name in dropped:
                    self._forget(name)
                return [{"Untagged": parse_reference(name).familiar()} for name in dropped]
        elif len([n for n in names if n in self.tags]) > 1 and not force:
            raise Conflict(
                f"conflict: unable to delete {image.short_id} (must be forced) - image is "
                "referenced in multiple repositories"
            )
        container = user_of(image)
        if container is not None and not force:
            raise Conflict(
                f'conflict: unable to remove repository reference "{text}" (must force) - '
                f"container {container[:12]} is using its referenced image {image.short_id}"
                if by_name is not None
                else f"conflict: unable to delete {image.short_id} (must be forced) - image is "
                f"being used by stopped container {container[:12]}"
            )
        answer = []
        for name in names:
            self._forget(name)
            answer.append({"Untagged": parse_reference(name).familiar()})
        del self.images[image.id]
        answer.append({"Deleted": image.id})
        return answer

    def _names(self, image: Image) -> list[str]:
        names = [ref for ref, id_ in self.tags.items() if id_ == image.id]
        return names + [ref for ref, id_ in self.digests.items() if id_ == image.id]

    def _name_key(self, text: str) -> str | None:
        try:
            reference = parse_reference(text)
        except InvalidParameter:
            return None
        key = str(reference) if reference.digest else str(reference.tagged())
        return key if key in self.tags or key in self.digests else None

    def _forget(self, key: str) -> None:
        self.tags.pop(key, None)
        self.digests.pop(key, None)
