"""Registry credentials for a push, and the registry a pool's provisioner made.

Credentials go to the engine in the push request's X-Registry-Auth header (the SDK's
`auth_config`): never on a command line, never into the user's docker config. Each comes from
the cloud's own SDK and the deploying user's credentials:

- ECR: `ecr.get_authorization_token` (base64 "AWS:<password>"), region from the host name;
- Artifact Registry (and gcr.io): user `oauth2accesstoken`, password an OAuth access token of
  the google default credentials;
- ACR: an Entra ID token exchanged at https://<registry>/oauth2/exchange for a refresh token,
  used with the all-zero user name ACR documents for that token.

Other registries get no credentials from us: the engine's own (docker login) apply.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from push_pools.errors import ImageError

if TYPE_CHECKING:
    from push_pools.client import Client

__all__ = ["PoolRegistry", "auth_config_for", "pool_registry"]

_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
_GOOGLE_HOST = re.compile(r"^(?:[a-z0-9-]+-docker\.pkg\.dev|(?:[a-z]+\.)?gcr\.io)$")
_ACR_HOST = re.compile(r"^[a-z0-9]+\.azurecr\.(?:io|cn|us)$")
# The registries' documented fixed user names for token logins; the secret is the token.
ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000"  # nosec B105
GOOGLE_TOKEN_USER = "oauth2accesstoken"  # nosec B105
_GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_AZURE_SCOPE = "https://management.azure.com/.default"


def auth_config_for(registry: str | None) -> dict[str, str] | None:
    """The credentials for pushing to `registry` (a host), or None to use the engine's own."""
    if registry is None:
        return None
    for pattern, make in _MAKERS:
        if pattern.match(registry):
            return make(registry)
    return None


def _ecr(registry: str) -> dict[str, str]:
    match = _ECR_HOST.match(registry)
    if match is None:  # pragma: no cover - _MAKERS only calls it for ECR hosts
        raise ImageError(f"{registry} is not an ECR registry")
    account, region = match.groups()
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise ImageError(
            f"pushing to ECR ({registry}) needs boto3: pip install 'push-pools[aws]'"
        ) from None
    try:
        # AWS_ENDPOINT_URL(_ECR) is honoured by boto3 itself (LocalStack, moto).
        answer = boto3.client("ecr", region_name=region).get_authorization_token(
            registryIds=[account]
        )
        data = answer["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    except (BotoCoreError, ClientError) as exc:
        raise ImageError(
            f"cannot get an ECR authorization token for {registry}: {_first_line(exc)}"
        ) from None
    except (KeyError, IndexError, ValueError):
        raise ImageError(f"ECR answered no usable authorization token for {registry}") from None
    return {"username": user, "password": password, "serveraddress": registry}


def _google(registry: str) -> dict[str, str]:
    try:
        import google.auth
        import google.auth.transport.requests
        from google.auth.exceptions import GoogleAuthError
    except ImportError:
        raise ImageError(
            f"pushing to {registry} needs google-auth: pip install 'push-pools[gcp]'"
        ) from None
    try:
        credentials, _ = google.auth.default(scopes=[_GOOGLE_SCOPE])
        credentials.refresh(google.auth.transport.requests.Request())
    except GoogleAuthError as exc:
        raise ImageError(
            f"cannot get a Google access token to push to {registry}: {_first_line(exc)}"
        ) from None
    return {"username": GOOGLE_TOKEN_USER, "password": credentials.token, "serveraddress": registry}


def _acr(registry: str) -> dict[str, str]:
    from push_pools import settings

    try:
        import httpx
        from azure.core.exceptions import AzureError

        from push_pools.executors.aci.credentials import credential
    except ImportError:
        raise ImageError(
            f"pushing to {registry} needs azure-identity: pip install 'push-pools[azure]'"
        ) from None
    try:
        # The same sign-in as the ACI pools: environment, workload or managed identity, az CLI.
        token = credential().get_token(_AZURE_SCOPE)
    except AzureError as exc:
        raise ImageError(
            f"cannot get an Azure token to push to {registry}: {_first_line(exc)}"
        ) from None
    # PUSH_POOLS_AZURE_ENDPOINT (a testing setting) stands for every Azure endpoint, this too.
    base = settings.azure_endpoint() or f"https://{registry}"
    try:
        answer = httpx.post(
            f"{base}/oauth2/exchange",
            data={"grant_type": "access_token", "service": registry, "access_token": token.token},
            timeout=30,
            verify=settings.azure_ca_bundle() or True,
        )
    except httpx.HTTPError as exc:
        raise ImageError(f"cannot reach {registry} to exchange the Azure token: {exc}") from None
    if answer.status_code != 200:
        raise ImageError(
            f"{registry} refused the Azure token (HTTP {answer.status_code}): "
            f"{answer.text.strip()[:300]}"
        )
    try:
        refresh = answer.json().get("refresh_token")
    except (ValueError, AttributeError):
        refresh = None  # not the JSON object the exchange answers with
    if not refresh:
        raise ImageError(f"{registry} answered the token exchange without a refresh token")
    return {"username": ACR_TOKEN_USER, "password": str(refresh), "serveraddress": registry}


_MAKERS: tuple[tuple[re.Pattern[str], Callable[[str], dict[str, str]]], ...] = (
    (_ECR_HOST, _ecr),
    (_GOOGLE_HOST, _google),
    (_ACR_HOST, _acr),
)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


# --- the pool's registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class PoolRegistry:
    location: str  # a host, or host/path
    # ECR's record is one repository: images share it, with their names in the tag.
    one_repository: bool


# Record kinds the provisioners save (provisioners/*/: ecr.py, artifacts.py, registry.py), and
# the data field each keeps the registry's address in.
_RECORD_FIELDS = {
    "aws:ecr:repository": ("uri", True),
    "gcp:artifactregistry:repository": ("url", False),
    "azure:container-registry": ("login_server", False),
}


def pool_registry(client: Client, pool_name: str) -> PoolRegistry | None:
    """The registry `--provision-infra` made for the pool, if it made one."""
    records: list[dict[str, Any]] = client.list_infrastructure(pool_name)
    for record in records:
        found = _RECORD_FIELDS.get(str(record.get("kind")))
        if found is None:
            continue
        key, one_repository = found
        location = (record.get("data") or {}).get(key)
        if location:
            return PoolRegistry(str(location).removeprefix("https://"), one_repository)
    return None
