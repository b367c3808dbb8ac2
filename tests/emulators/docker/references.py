"""Image references (`name[:tag][@digest]`), normalized the way the engine does.

`python:3.12-slim` is `docker.io/library/python:3.12-slim`; a first component with a dot or a
colon, or `localhost`, is a registry host. The engine shows references in their familiar form
(`python:3.12-slim`, `127.0.0.1:5000/app:v1`), which is what RepoTags and messages use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from tests.emulators.docker.exceptions import InvalidParameter

__all__ = ["DEFAULT_DOMAIN", "Reference", "is_digest", "parse_reference"]

DEFAULT_DOMAIN = "docker.io"
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, e.g. docker.io/library/python."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as the engine shows it, e.g. python or 127.0.0.1:5000/app."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        return self.path.removeprefix("library/")

    def familiar(self) -> str:
        text = self.familiar_name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def tagged(self, default: str = "latest") -> Reference:
        """With a tag: `latest` when neither a tag nor a digest was given."""
        if self.tag or self.digest:
            return self
        return replace(self, tag=default)

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        return replace(self, tag=None, digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None


def parse_reference(text: str) -> Reference:
    """Parse and normalize; InvalidParameter ("invalid reference format...") otherwise."""
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not is_digest(digest):
            raise InvalidParameter("invalid reference format")
    tag = None
    slash, colon = remainder.rfind("/"), remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidParameter("invalid reference format")
    domain, path = _split_domain(remainder)
    if not path:
        raise InvalidParameter("invalid reference format")
    if path != path.lower():
        raise InvalidParameter(
            f"invalid reference format: repository name ({path}) must be lowercase"
        )
    if not all(_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise InvalidParameter("invalid reference format")
    if not _DOMAIN.fullmatch(domain):
        raise InvalidParameter("invalid reference format")
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    is_host = sep and (
        "." in first or ":" in first or first == "localhost" or first != first.lower()
    )
    if is_host:
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return domain, path
