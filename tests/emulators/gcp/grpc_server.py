"""The gRPC side: an internal grpcio server (local credentials) for the IAM admin API.

The proto-plus packages register no service descriptors, so each method is declared with its
own request/response (de)serializers. Every call needs `authorization: Bearer ...` metadata
(google-auth's AuthMetadataPlugin sends it); faults match the method's path.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped]

from tests.emulators.gcp.auth import TokenAuthority
from tests.emulators.gcp.calls import Call, CallLog
from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.faults import Faults

__all__ = ["GrpcMethod", "GrpcServer"]


@dataclass(frozen=True)
class GrpcMethod:
    name: str
    deserialize: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]
    handler: Callable[[Any, str], Any]  # (request, caller's email) -> response message
    mutating: bool


class GrpcServer:
    def __init__(
        self,
        service: str,
        methods: Sequence[GrpcMethod],
        *,
        authority: TokenAuthority,
        faults: Faults,
        calls: CallLog,
        lock: threading.RLock,
        errors: list[str],
    ) -> None:
        self.service = service
        self.authority = authority
        self.faults = faults
        self.calls = calls
        self.lock = lock
        self.errors = errors
        handlers = {
            m.name: grpc.unary_unary_rpc_method_handler(
                self._behaviour(m),
                request_deserializer=m.deserialize,
                response_serializer=m.serialize,
            )
            for m in methods
        }
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, handlers),)
        )
        self.port = self._server.add_secure_port(
            "127.0.0.1:0", grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP)
        )

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None).wait(5)

    def _behaviour(self, method: GrpcMethod) -> Callable[[Any, grpc.ServicerContext], Any]:
        path = f"/{self.service}/{method.name}"

        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            principal: str | None = None
            try:
                metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
                principal = self.authority.authenticate(metadata.get("authorization"))
                fault = self.faults.pick(path)
                if fault is not None and not fault.after_effect:
                    raise fault.error()
                with self.lock:
                    response = method.handler(request, principal)
                if fault is not None:
                    raise fault.error()
            except ApiError as error:
                self._record(method, path, principal, error.http_status, error.code)
                context.abort(error.grpc_code, error.message)
            except Exception:  # a bug in the emulator: tell the test, answer INTERNAL
                self.errors.append(traceback.format_exc())
                self._record(method, path, principal, 500, "INTERNAL")
                context.abort(grpc.StatusCode.INTERNAL, "Internal error.")
            self._record(method, path, principal, 200, "OK")
            return response

        return behaviour

    def _record(
        self, method: GrpcMethod, path: str, principal: str | None, status: int, code: str
    ) -> None:
        self.calls.append(Call("grpc", method.name, path, principal, status, code, method.mutating))
