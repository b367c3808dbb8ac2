"""Routes: an operation's path template, its handler, and the RBAC action it needs.

Each service's urls.py lists its routes with templates copied from the REST specs, e.g.

    Route("PUT", "/subscriptions/{sub}/resourcegroups/{rg}", handler, action="...", ...)

`{name}` is one path segment; `{+name}` is any number of them (a role assignment's scope).
ARM matches paths case-insensitively and so does the router. `scope` is the template of the
scope the action is checked at; None means the request path itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.emulators.azure.wire import Request, Response

if TYPE_CHECKING:
    from tests.emulators.azure.entra.models import Principal
    from tests.emulators.azure.state import ArmState

__all__ = ["Ctx", "Handler", "Route", "Router"]

_PLACEHOLDER = re.compile(r"\{(\+?)(\w+)\}")


@dataclass
class Ctx:
    """One call as a handler sees it."""

    request: Request
    params: dict[str, str]
    state: ArmState
    route: Route
    principal: Principal | None = None

    @property
    def base_url(self) -> str:
        return self.request.base_url


Handler = Callable[[Ctx], Response]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    action: str | None = None  # None: any authenticated caller (or anyone, if anonymous)
    scope: str | None = None
    namespace: str | None = None  # the provider: registration and api-version checks
    api_versions: frozenset[str] = frozenset()
    mutating: bool | None = None  # None: by method (POSTs that only read say False)
    anonymous: bool = False  # Entra's own endpoints: no bearer token
    any_access: bool = False  # allowed to anyone holding a role anywhere in the subscription
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex, last = "", 0
        for placeholder in _PLACEHOLDER.finditer(self.template):
            regex += re.escape(self.template[last : placeholder.start()])
            greedy, name = placeholder.groups()
            regex += f"(?P<{name}>.*)" if greedy else f"(?P<{name}>[^/]+)"
            last = placeholder.end()
        regex += re.escape(self.template[last:])
        object.__setattr__(self, "pattern", re.compile(f"^{regex}/?$", re.IGNORECASE))

    @property
    def is_mutating(self) -> bool:
        if self.mutating is not None:
            return self.mutating
        return self.method in ("PUT", "PATCH", "DELETE", "POST")

    def scope_of(self, params: dict[str, str], path: str) -> str:
        if self.scope is None:
            return path.rstrip("/")
        return self.scope.format(**params)


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route, found.groupdict()
        return None

    def path_known(self, path: str) -> bool:
        return any(route.pattern.match(path) for route in self.routes)
