"""Routes of the Engine API, each to the DockerResponses method of its operation.

Paths are matched without the `/v1.NN` prefix (the server strips it). Image names contain
slashes (`123456789012.dkr.ecr.us-east-1.amazonaws.com/app`), so their routes match greedily
up to the operation's last segment.
"""

from __future__ import annotations

import re

__all__ = ["ROUTES", "resolve"]

_ID = r"(?P<id>[^/]+)"
_NAME = r"(?P<name>.+)"

ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(f"^{pattern}$"), handler)
    for method, pattern, handler in [
        ("GET", "/_ping", "system_ping"),
        ("HEAD", "/_ping", "system_ping"),
        ("GET", "/version", "system_version"),
        ("GET", "/info", "system_info"),
        ("POST", "/auth", "system_auth"),
        ("POST", "/build", "image_build"),
        ("POST", "/build/prune", "build_prune"),
        ("GET", "/images/json", "image_list"),
        ("POST", "/images/create", "image_create"),
        ("POST", "/images/prune", "image_prune"),
        ("GET", f"/images/{_NAME}/json", "image_inspect"),
        ("GET", f"/images/{_NAME}/history", "image_history"),
        ("POST", f"/images/{_NAME}/tag", "image_tag"),
        ("POST", f"/images/{_NAME}/push", "image_push"),
        ("DELETE", f"/images/{_NAME}", "image_delete"),
        ("POST", "/containers/create", "container_create"),
        ("GET", "/containers/json", "container_list"),
        ("POST", "/containers/prune", "container_prune"),
        ("GET", f"/containers/{_ID}/json", "container_inspect"),
        ("POST", f"/containers/{_ID}/start", "container_start"),
        ("POST", f"/containers/{_ID}/stop", "container_stop"),
        ("POST", f"/containers/{_ID}/restart", "container_restart"),
        ("POST", f"/containers/{_ID}/kill", "container_kill"),
        ("POST", f"/containers/{_ID}/wait", "container_wait"),
        ("GET", f"/containers/{_ID}/logs", "container_logs"),
        ("DELETE", f"/containers/{_ID}", "container_delete"),
        ("GET", "/networks", "network_list"),
        ("POST", "/networks/create", "network_create"),
        ("GET", f"/networks/{_ID}", "network_inspect"),
        ("DELETE", f"/networks/{_ID}", "network_delete"),
        ("POST", f"/networks/{_ID}/connect", "network_connect"),
        ("POST", f"/networks/{_ID}/disconnect", "network_disconnect"),
    ]
]


def resolve(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The handler name and path parameters for a request, or None (the engine's 404)."""
    for route_method, pattern, handler in ROUTES:
        if route_method != method:
            continue
        match = pattern.match(path)
        if match:
            return handler, match.groupdict()
    return None
