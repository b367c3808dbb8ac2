"""Pull and push between the local image store and the registry, with the engine's progress
stream.

A pull the registry refuses fails before any output, so the engine answers it with an HTTP
error (404 for an unknown repository or manifest). A push writes its progress first, so a
refusal is an `{"error": ..., "errorDetail": ...}` line in a 200 stream: docker-py does not
raise on it, the caller must scan the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.docker.exceptions import DockerApiError
from tests.emulators.docker.images import Image, ImageStore
from tests.emulators.docker.references import DEFAULT_DOMAIN, Reference
from tests.emulators.docker.registry import Registry, RegistryError

__all__ = ["PullRecord", "PushDenial", "PushRecord", "pull", "push"]

Event = dict[str, Any]


@dataclass
class PullRecord:
    reference: str  # as pulled, familiar form
    auth: dict[str, Any] | None
    platform: str | None = None
    error: str | None = None


@dataclass
class PushRecord:
    repository: str  # familiar form, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/app
    tag: str | None
    auth: dict[str, Any] | None  # the decoded X-Registry-Auth
    digests: dict[str, str] = field(default_factory=dict)  # tag -> pushed manifest digest
    error: str | None = None


@dataclass(frozen=True)
class PushDenial:
    target: str  # a registry host or a repository (familiar or full name)
    message: str

    def matches(self, reference: Reference) -> bool:
        target = self.target.rstrip("/")
        candidates = {reference.domain, reference.name, reference.familiar_name}
        if reference.domain == DEFAULT_DOMAIN:
            candidates.add("docker.io")
        return target in candidates


def pull(
    images: ImageStore,
    registry: Registry,
    reference: Reference,
    auth: Mapping[str, Any] | None,
) -> tuple[Image, list[Event]]:
    """Fetch `reference` into the local store; DockerApiError when the registry refuses."""
    refusal = registry.auth_error(reference.domain, auth)
    if refusal is not None:
        target = reference.tagged()
        raise DockerApiError(
            f'Head "https://{reference.domain}/v2/{reference.path}/manifests/'
            f'{target.digest or target.tag}": {refusal}',
            status=500,
        )
    try:
        image, digest = registry.resolve(reference)
    except RegistryError as exc:
        raise DockerApiError(exc.message, status=exc.status) from exc
    reference = reference.tagged()
    known = images.find(image.id) is not None
    events: list[Event] = [
        {"status": f"Pulling from {reference.path}", "id": reference.tag or reference.digest}
    ]
    for layer in image.layers:
        short = layer.digest[7:19]
        if known:
            events.append({"status": "Already exists", "progressDetail": {}, "id": short})
            continue
        events += [
            {"status": "Pulling fs layer", "progressDetail": {}, "id": short},
            {"status": "Download complete", "progressDetail": {}, "id": short},
            {"status": "Pull complete", "progressDetail": {}, "id": short},
        ]
    if reference.tag:
        images.tag(image, reference)
    images.add_digest(image, reference.name, digest)
    news = "Image is up to date for" if known else "Downloaded newer image for"
    events += [
        {"status": f"Digest: {digest}"},
        {"status": f"Status: {news} {reference.familiar()}"},
    ]
    return image, events


def push(
    images: ImageStore,
    registry: Registry,
    reference: Reference,
    record: PushRecord,
    denials: list[PushDenial],
) -> list[Event]:
    """Push one tag (or every tag of the repository when `reference` has none)."""
    events: list[Event] = [{"status": f"The push refers to repository [{reference.name}]"}]
    if reference.tag:
        image = images.find(str(reference))
        targets = [(reference.tag, image)] if image is not None else []
    else:
        targets = images.tagged_in(reference.name)
    if not targets:
        return events + _error(
            record, f"An image does not exist locally with the tag: {reference.familiar_name}"
        )
    for tag, image in targets:
        layers = [layer.digest[7:19] for layer in reversed(image.layers)]
        events += [{"status": "Preparing", "progressDetail": {}, "id": id_} for id_ in layers]
        refusal = registry.auth_error(reference.domain, record.auth)
        denial = next((d for d in denials if d.matches(reference)), None)
        if refusal is not None or denial is not None:
            message = refusal or _denied(denial.message if denial else "")
            return events + _error(record, message)
        for layer in reversed(image.layers):
            status = (
                "Layer already exists"
                if registry.has_layer(reference.name, layer.digest)
                else "Pushed"
            )
            events.append({"status": status, "progressDetail": {}, "id": layer.digest[7:19]})
        digest = registry.put(reference.with_tag(tag), image)
        images.add_digest(image, reference.name, digest)
        record.digests[tag] = digest
        size = len(image.manifest())
        events += [
            {"status": f"{tag}: digest: {digest} size: {size}"},
            {"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": size}},
        ]
    return events


def _denied(message: str) -> str:
    message = message or "requested access to the resource is denied"
    return message if message.startswith("denied:") else f"denied: {message}"


def _error(record: PushRecord | None, message: str) -> list[Event]:
    if record is not None:
        record.error = message
    return [{"errorDetail": {"message": message}, "error": message}]
