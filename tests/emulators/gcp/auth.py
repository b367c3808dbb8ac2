"""OAuth 2.0 for service accounts, as Google's token endpoint and APIs check it.

Two ways in, both taken by google-auth depending on the client:
- the JWT-bearer grant: POST /token with `assertion` = a JWT signed RS256 by a service-account
  key (header `kid` = private_key_id, `iss` = the account's email, `aud` = the token URI);
  the answer is an opaque access token (google-cloud-core clients: logging, storage);
- a self-signed JWT sent directly as the bearer token (gapic clients set
  `always_use_jwt_access`; the JWT carries a `scope` claim or an API audience, AIP-4111).
Both are verified against the public half of a key the IAM model knows.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.emulators.gcp.errors import ApiError

__all__ = ["OAuthError", "TokenAuthority", "VerifyingKey"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME = 3600
# How far a JWT's clock may be ahead of ours, and the longest lifetime Google accepts.
_SKEW = 300
_MAX_JWT_LIFETIME = 3600
# The audiences a grant assertion may name: Google's token endpoints (google-auth always
# writes oauth2.googleapis.com/token, whatever the key file's token_uri) and ours.
_TOKEN_AUDIENCES = (
    "https://oauth2.googleapis.com/token",
    "https://accounts.google.com/o/oauth2/token",
    "https://www.googleapis.com/oauth2/v4/token",
)
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential."
)


@dataclass(frozen=True)
class VerifyingKey:
    """What the token checks need of a key: whose it is and its public half."""

    key_id: str
    email: str
    public_key: rsa.RSAPublicKey


class OAuthError(Exception):
    """An answer of the token endpoint other than a token: RFC 6749's error JSON."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class TokenAuthority:
    """Issues access tokens for signed assertions and resolves bearer tokens to an account."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        find_key: Callable[[str], VerifyingKey | None],
        account_active: Callable[[str], bool],
    ) -> None:
        self.clock = clock
        self.find_key = find_key
        self.account_active = account_active
        self.token_uri = ""
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the token endpoint

    def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != JWT_BEARER:
            raise OAuthError("unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion", "")
        try:
            claims = self._verified_claims(assertion)
        except ValueError as exc:
            raise OAuthError("invalid_grant", str(exc)) from exc
        if claims.get("aud") not in (*_TOKEN_AUDIENCES, self.token_uri):
            raise OAuthError("invalid_grant", "Invalid JWT: the audience is not a token endpoint.")
        token = "ya29.emu-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (claims["iss"], self.clock() + TOKEN_LIFETIME)
        return {"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"}

    # ------------------------------------------------------------------ bearer tokens

    def authenticate(self, authorization: str | None) -> str:
        """The email of the account a request's `Authorization` header proves, or 401."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError("UNAUTHENTICATED", _UNAUTHENTICATED)
        token = token.strip()
        with self._lock:
            issued = self._tokens.get(token)
        if issued is not None:
            email, expiry = issued
            if self.clock() >= expiry or not self.account_active(email):
                raise ApiError("UNAUTHENTICATED", _UNAUTHENTICATED)
            return email
        try:
            claims = self._verified_claims(token)
        except ValueError as exc:
            raise ApiError("UNAUTHENTICATED", _UNAUTHENTICATED) from exc
        # A self-signed JWT names the API (aud) or the scopes; one made for the token
        # endpoint is an assertion, not a credential.
        audience = str(claims.get("aud") or "")
        if audience in (*_TOKEN_AUDIENCES, self.token_uri) or not (claims.get("scope") or audience):
            raise ApiError("UNAUTHENTICATED", _UNAUTHENTICATED)
        return str(claims["iss"])

    def revoke_all(self, email: str) -> None:
        with self._lock:
            for token in [t for t, (who, _) in self._tokens.items() if who == email]:
                del self._tokens[token]

    # ------------------------------------------------------------------ JWT

    def _verified_claims(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise ValueError("Invalid JWT: malformed.")
        try:
            header = json.loads(_b64decode(parts[0]))
            claims = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("Invalid JWT: malformed.") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("Invalid JWT: malformed.")
        if header.get("alg") != "RS256":
            raise ValueError("Invalid JWT: unsupported algorithm.")
        key = self.find_key(str(header.get("kid", "")))
        if key is None or claims.get("iss") != key.email:
            raise ValueError("Invalid JWT Signature.")
        try:
            key.public_key.verify(
                signature,
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature as exc:
            raise ValueError("Invalid JWT Signature.") from exc
        if not self.account_active(key.email):
            raise ValueError("Invalid grant: account not found")
        now = self.clock()
        issued_at, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued_at, int | float) or not isinstance(expires, int | float):
            raise ValueError("Invalid JWT: iat and exp are required.")
        if issued_at > now + _SKEW or expires <= now or expires - issued_at > _MAX_JWT_LIFETIME:
            raise ValueError(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim."
            )
        return claims


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
