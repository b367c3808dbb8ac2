"""What ARM does to every call before a resource provider sees it, in ARM's order:

route -> bearer token (401) -> api-version (400) -> injected fault -> subscription (404)
-> RBAC for the route's action at its scope (403) -> provider registration (409)
-> the handler -> an after-effect fault replaces a successful answer.

Every call is recorded (method, path, caller, status, whether it could change anything).
"""

from __future__ import annotations

import re
import time
import traceback
import uuid

from tests.emulators.azure.entra.models import Principal, TokenError
from tests.emulators.azure.faults import CallLog, CallRecord, Faults
from tests.emulators.azure.routing import Ctx, Route, Router
from tests.emulators.azure.state import ArmState
from tests.emulators.azure.wire import ArmError, Request, Response

__all__ = ["Dispatcher"]

_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
# Namespaces every subscription can always use.
_NO_REGISTRATION = {"microsoft.resources", "microsoft.authorization"}


class Dispatcher:
    def __init__(self, state: ArmState, router: Router, faults: Faults, log: CallLog) -> None:
        self.state = state
        self.router = router
        self.faults = faults
        self.log = log

    def handle(self, request: Request) -> Response:
        principal: Principal | None = None
        route: Route | None = None
        action: str | None = None
        try:
            found = self.router.match(request.method, request.path)
            if found is None:
                raise self._no_route(request)
            route, params = found
            action = route.action.format(**params) if route.action else None
            if not route.anonymous:
                principal = self._authenticate(request)
            self._check_api_version(route, request)
            fault = self.faults.take(request.method, request.path)
            if fault is not None and not fault.after_effect:
                raise fault.error()
            ctx = Ctx(request, params, self.state, route, principal)
            if principal is not None:
                self._authorize(ctx, principal, action)
            response = route.handler(ctx)
            if fault is not None and response.status < 400:
                response = fault.error().to_response()
        except ArmError as error:
            response = error.to_response()
        except Exception:
            self.state.errors.append(traceback.format_exc())
            response = ArmError(
                500, "InternalServerError", "The emulator failed: " + traceback.format_exc()
            ).to_response()
        request_id = str(uuid.uuid4())
        response.headers.setdefault("x-ms-request-id", request_id)
        response.headers.setdefault("x-ms-correlation-request-id", request_id)
        mutating = route.is_mutating if route else request.method not in ("GET", "HEAD")
        record = CallRecord(
            request.method,
            request.path,
            dict(request.query),
            principal.object_id if principal else None,
            principal.client_id if principal else None,
            response.status,
            mutating,
            action,
        )
        self.log.append(record)
        return response

    # ------------------------------------------------------------------ steps

    def _no_route(self, request: Request) -> ArmError:
        if self.router.path_known(request.path):
            return ArmError(
                405,
                "MethodNotAllowed",
                f"The requested resource does not support http method '{request.method}'.",
            )
        return ArmError(
            400,
            "InvalidResourceType",
            f"The resource type could not be found (the emulator has no route for "
            f"{request.method} {request.path}).",
        )

    def _authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        if not header:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                self._challenge("invalid_token", "Missing token"),
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid "
                "format.",
                self._challenge("invalid_token", "Invalid format"),
            )
        try:
            return self.state.directory.verify_token(token.strip())
        except TokenError as error:
            raise ArmError(
                401, error.code, error.message, self._challenge("invalid_token", error.message)
            ) from None

    def _challenge(self, error: str, description: str) -> dict[str, str]:
        authority = f"https://login.microsoftonline.com/{self.state.tenant_id}"
        return {
            "WWW-Authenticate": f'Bearer authorization_uri="{authority}", error="{error}", '
            f'error_description="{description}"'
        }

    def _check_api_version(self, route: Route, request: Request) -> None:
        if not route.api_versions:
            return
        version = request.api_version
        if not version:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version not in route.api_versions:
            supported = ", ".join(sorted(route.api_versions, reverse=True))
            code = (
                "InvalidApiVersionParameter"
                if (route.namespace or "").lower() == "microsoft.resources"
                else "NoRegisteredProviderFound"
            )
            raise ArmError(
                400,
                code,
                f"The api-version '{version}' is invalid. The supported versions are "
                f"'{supported}'.",
            )

    def _authorize(self, ctx: Ctx, principal: Principal, action: str | None) -> None:
        route = ctx.route
        scope = route.scope_of(ctx.params, ctx.request.path)
        match = _SUBSCRIPTION.match(scope)
        subscription_id = match.group(1) if match else None
        if subscription_id is not None:
            self.state.resources.subscription(subscription_id)
        authorization = self.state.authorization
        if route.any_access and subscription_id is not None:
            if not authorization.has_any_role_within(
                principal.object_id, f"/subscriptions/{subscription_id}"
            ):
                raise _denied(principal, action or "Microsoft.Resources/subscriptions/read", scope)
        elif action is not None and not authorization.allowed(principal.object_id, action, scope):
            raise _denied(principal, action, scope)
        namespace = (route.namespace or "").lower()
        if subscription_id and namespace and namespace not in _NO_REGISTRATION:
            state = self.state.resources.registration_state(
                subscription_id, namespace, time.monotonic()
            )
            if state != "Registered":
                raise ArmError(
                    409,
                    "MissingSubscriptionRegistration",
                    f"The subscription is not registered to use namespace '{route.namespace}'. "
                    "See https://aka.ms/rps-not-found for how to register subscriptions.",
                )


def _denied(principal: Principal, action: str, scope: str) -> ArmError:
    return ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{principal.object_id}' with object id '{principal.object_id}' does not "
        f"have authorization to perform action '{action}' over scope '{scope}' or the scope is "
        "invalid. If access was recently granted, please refresh your credentials.",
    )
