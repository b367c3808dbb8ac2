"""The directory: principals (service principals and managed identities) and their tokens.

Tokens are JWTs signed with the emulator's own HMAC key and carry the claims ARM reads (oid,
appid, tid, aud, exp), so product code that decodes its token sees the familiar shape.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

__all__ = ["ARM_AUDIENCES", "Directory", "Principal", "TokenError"]

# The resource a management token is for, in the spellings clients ask for it.
ARM_AUDIENCES = (
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
)


@dataclass(frozen=True)
class Principal:
    """A service principal (with a secret) or a managed identity's principal (without)."""

    tenant_id: str
    client_id: str
    object_id: str
    display_name: str
    client_secret: str | None = None
    kind: str = "ServicePrincipal"  # or "ManagedIdentity"

    def env(self) -> dict[str, str]:
        """EnvironmentCredential's variables for this service principal."""
        if self.client_secret is None:
            raise ValueError(f"{self.display_name} has no secret (a managed identity?)")
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_CLIENT_SECRET": self.client_secret,
        }


class TokenError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Directory:
    """One Entra tenant's principals; issues and checks tokens. Thread-safe."""

    def __init__(self, tenant_id: str, issuer_base: str = "") -> None:
        self.tenant_id = tenant_id
        self.issuer_base = issuer_base
        self.token_lifetime_seconds = 3600
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._by_object: dict[str, Principal] = {}
        # Object ids become visible to role assignments only after this moment (replication).
        self._visible_at: dict[str, float] = {}

    # ------------------------------------------------------------------ principals

    def add(
        self,
        display_name: str,
        *,
        kind: str = "ServicePrincipal",
        with_secret: bool = True,
        replication_seconds: float = 0.0,
    ) -> Principal:
        principal = Principal(
            tenant_id=self.tenant_id,
            client_id=str(uuid.uuid4()),
            object_id=str(uuid.uuid4()),
            display_name=display_name,
            client_secret=secrets.token_urlsafe(30) if with_secret else None,
            kind=kind,
        )
        with self._lock:
            self._by_object[principal.object_id] = principal
            self._visible_at[principal.object_id] = time.monotonic() + replication_seconds
        return principal

    def remove(self, object_id: str) -> None:
        with self._lock:
            self._by_object.pop(object_id, None)
            self._visible_at.pop(object_id, None)

    def get(self, object_id: str) -> Principal | None:
        with self._lock:
            return self._by_object.get(object_id)

    def by_client_id(self, client_id: str) -> Principal | None:
        with self._lock:
            return next((p for p in self._by_object.values() if p.client_id == client_id), None)

    def replicated(self, object_id: str) -> bool:
        """Whether role assignments can find this principal yet (Entra replicates slowly)."""
        with self._lock:
            visible_at = self._visible_at.get(object_id)
        return visible_at is not None and time.monotonic() >= visible_at

    def principals(self) -> list[Principal]:
        with self._lock:
            return list(self._by_object.values())

    # ------------------------------------------------------------------ tokens

    def issue_token(self, principal: Principal, audience: str) -> tuple[str, int]:
        now = int(time.time())
        lifetime = self.token_lifetime_seconds
        claims = {
            "aud": audience.rstrip("/"),
            "iss": f"{self.issuer_base}/{self.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": principal.client_id,
            "oid": principal.object_id,
            "sub": principal.object_id,
            "tid": self.tenant_id,
            "idtyp": "app",
            "jti": secrets.token_hex(8),
        }
        return self._sign(claims), lifetime

    def verify_token(self, token: str) -> Principal:
        try:
            header, payload, signature = token.split(".")
        except ValueError:
            raise TokenError("InvalidAuthenticationToken", "The access token is invalid.") from None
        expected = _b64(
            hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        )
        if not hmac.compare_digest(expected, signature):
            raise TokenError("InvalidAuthenticationToken", "The access token is invalid.")
        claims = json.loads(_unb64(payload))
        if claims.get("aud") not in {a.rstrip("/") for a in ARM_AUDIENCES}:
            raise TokenError(
                "InvalidAuthenticationToken",
                "The access token has been obtained for wrong audience or resource "
                f"'{claims.get('aud')}'. It should exactly match with one of the allowed "
                "audiences 'https://management.core.windows.net/','https://management.azure.com'.",
            )
        if claims["exp"] <= time.time():
            raise TokenError(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time "
                f"'{time.strftime('%m/%d/%Y %H:%M:%S', time.gmtime(claims['exp']))}' "
                "is earlier than current UTC time.",
            )
        principal = self.get(claims["oid"])
        if principal is None:
            raise TokenError("InvalidAuthenticationToken", "The access token is invalid.")
        return principal

    def _sign(self, claims: dict[str, object]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
