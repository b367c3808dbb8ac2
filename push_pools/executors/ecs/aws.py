"""boto3 sessions and clients, and the one place AWS exceptions become push-pools errors.

boto3 is imported inside functions: the CLI imports the pool-type registry on every start, and
only a server that actually runs ECS pools should pay for boto3.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from push_pools.errors import (
    AuthenticationError,
    InvalidInput,
    NotFound,
    PushPoolsError,
    ServerUnreachable,
)
from push_pools.executors.ecs.job import Credentials

# Total attempts (first call included) for calls that are safe to repeat.
READ_ATTEMPTS = 5

# Error codes, from the ECS, CloudWatch Logs and STS API references and botocore's retry
# handler. Matched as codes, never as message text.
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "AuthFailure",
        "InvalidAccessKeyId",
    }
)
ACCESS_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
NOT_FOUND_CODES = frozenset({"ClusterNotFoundException", "ResourceNotFoundException"})
_XML_CODE = re.compile(r"<Code>([A-Za-z0-9.]+)</Code>")
_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)


class AwsError(PushPoolsError):
    """An AWS call failed; `code` is AWS's error code (None for client-side failures)."""

    cloud = "aws"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class AwsCredentialsError(AwsError, AuthenticationError):
    """The credentials are missing, or AWS no longer accepts them."""


class AwsAccessDenied(AwsError):
    """The credentials authenticate, but may not do this."""


class AwsNotFound(AwsError, NotFound):
    pass


class AwsInvalidRequest(AwsError, InvalidInput):
    """AWS refused the request itself (a bad parameter, an inactive task definition, ...)."""


class AwsUnavailable(AwsError, ServerUnreachable):
    """Throttled, a server error or no connection, after botocore's own retries: try later."""


def client_config(*, retry: bool) -> Any:
    """The botocore Config of every client: the retry policy lives here and nowhere else.

    `retry=False` is for run_task, which is not idempotent everywhere (moto ignores
    clientToken): its caller checks whether a failed call took effect before trying again.
    """
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": READ_ATTEMPTS if retry else 1},
        connect_timeout=10,
        read_timeout=60,
        # The dispatcher submits from several threads at once through one client.
        max_pool_connections=32,
        user_agent_extra="push-pools",
    )


@dataclass(frozen=True)
class Target:
    """Where AWS calls go and as whom. `credentials` None: the server's default chain."""

    region: str
    endpoint_url: str | None
    credentials: Credentials | None

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (
            self.region,
            self.endpoint_url,
            self.credentials.fingerprint() if self.credentials else "-",
        )


class Sessions:
    """Makes boto3 sessions that share botocore's loaded service models.

    A new boto3 session reads the ECS and Logs models again (about 0.3 s each time); sessions
    made here share one loader, so another set of credentials costs milliseconds. One per
    executor, not per module: nothing global for tests to reset.
    """

    def __init__(self) -> None:
        self._loader: Any = None
        self._lock = threading.Lock()

    def session(self, credentials: Credentials | None, region: str | None) -> Any:
        import boto3
        import botocore.session

        core = botocore.session.get_session()
        with self._lock:
            if self._loader is None:
                self._loader = core.get_component("data_loader")
            else:
                core.register_component("data_loader", self._loader)
        if credentials is None:
            return boto3.Session(botocore_session=core, region_name=region)
        return boto3.Session(
            botocore_session=core,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            region_name=region,
            profile_name=credentials.profile,
        )

    def default_region(self, credentials: Credentials | None) -> str | None:
        """The region the AWS default chain (AWS_REGION, the profile's config) would use."""
        with aws_errors("read the AWS configuration"):
            return self.session(credentials, None).region_name  # type: ignore[no-any-return]


class Connection:
    """boto3 clients for one Target, created on first use; clients are thread-safe to share."""

    def __init__(self, target: Target, sessions: Sessions) -> None:
        self.target = target
        self._sessions = sessions
        self._clients: dict[tuple[str, bool], Any] = {}
        # boto3 sessions are not thread-safe while creating clients.
        self._lock = threading.Lock()

    def client(self, service: str, *, retry: bool = True) -> Any:
        key = (service, retry)
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                with aws_errors(f"create an AWS {service} client"):
                    session = self._sessions.session(self.target.credentials, self.target.region)
                    client = session.client(
                        service,
                        region_name=self.target.region,
                        endpoint_url=self.target.endpoint_url,
                        config=client_config(retry=retry),
                    )
                self._clients[key] = client
        return client


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, AwsUnavailable)


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Translate what boto3 raises while doing `action` into push-pools errors.

    `action` completes "could not ...", e.g. "start the ECS task".
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    try:
        yield
    except ClientError as exc:
        raise _from_client_error(exc, action) from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise AwsCredentialsError(
            f"could not {action}: no usable AWS credentials ({exc}); set aws_credentials to "
            "an aws-credentials block, or give the server AWS credentials"
        ) from exc
    except ProfileNotFound as exc:
        raise AwsCredentialsError(
            f"could not {action}: {exc}; fix profile_name in the aws-credentials block"
        ) from exc
    except NoRegionError as exc:
        raise InvalidInput(
            f"could not {action}: no AWS region; set the job variable 'region' or region_name "
            "in the aws-credentials block"
        ) from exc
    except (ConnectionError, HTTPClientError) as exc:  # unreachable, timeouts, resets
        raise AwsUnavailable(f"could not {action}: cannot reach AWS ({exc})") from exc
    except BotoCoreError as exc:
        raise AwsError(f"could not {action}: {exc}") from exc


def _from_client_error(exc: Any, action: str) -> AwsError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    text = str(error.get("Message") or exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code.isdigit():
        # botocore leaves the HTTP status as the code when the error body is in another
        # protocol's format (moto's auth layer answers JSON services like ECS in XML); such a
        # body still names the code.
        found = _XML_CODE.search(text)
        if found:
            code = found.group(1)
            message = _XML_MESSAGE.search(text)
            text = message.group(1) if message else code
    detail = f"{code}: {text}" if code else text
    if code in CREDENTIAL_CODES:
        return AwsCredentialsError(
            f"could not {action}: AWS rejected the credentials ({detail}); they no longer "
            "authenticate: update the aws-credentials block (or the server's credentials)",
            code=code,
        )
    if code in ACCESS_CODES:
        return AwsAccessDenied(
            f"could not {action}: the AWS credentials are not allowed to ({detail}); grant "
            "the missing permission to the IAM user or role",
            code=code,
        )
    if code in TRANSIENT_CODES or status >= 500:
        return AwsUnavailable(
            f"could not {action}: AWS is throttling or unavailable ({detail}); retrying later",
            code=code,
        )
    if code in NOT_FOUND_CODES:
        return AwsNotFound(f"could not {action}: {detail}", code=code)
    return AwsInvalidRequest(f"could not {action}: {detail}", code=code)
