"""The one place botocore exceptions become push-pools errors, decided by error code.

Every step verb and the pre-flight run inside `translate_errors`; steps that expect an error
(a get that finds nothing, a delete of something already gone) use `absent_on`, which also
matches on codes. Nothing here looks at message text: AWS rewords messages, not codes.
botocore is imported inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from provisioners.plan import ProvisioningError
from push_pools.errors import InvalidInput, PushPoolsError

__all__ = ["CLOUD", "NO_CREDENTIALS", "absent_on", "error_code", "translate_errors"]

T = TypeVar("T")
CLOUD = "aws"

NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "or pass --profile"
)

# The caller's keys are wrong or expired: the user fixes their input, not their permissions.
_BAD_CREDENTIALS = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "InvalidAccessKeyId",
        "MissingAuthenticationToken",
    }
)
_ACCESS_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
)
_INVALID = frozenset(
    {
        "ValidationError",
        "ValidationException",
        "InvalidParameter",
        "InvalidParameterException",
        "InvalidParameterValue",
        "InvalidParameterValueException",
        "InvalidParameterCombination",
        "InvalidInput",
        "MalformedPolicyDocument",
        "InvalidVpcRange",
        "InvalidSubnet.Range",
    }
)
_QUOTA = frozenset(
    {
        "LimitExceeded",
        "LimitExceededException",
        "VpcLimitExceeded",
        "SubnetLimitExceeded",
        "InternetGatewayLimitExceeded",
        "RouteTableLimitExceeded",
        "SecurityGroupLimitExceeded",
        "ResourceLimitExceeded",
    }
)
_THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
    }
)
_IN_USE = frozenset(
    {
        "DependencyViolation",
        "DeleteConflict",
        "ClusterContainsTasksException",
        "ClusterContainsServicesException",
        "ClusterContainsContainerInstancesException",
        "RepositoryNotEmptyException",
        "InvalidGroup.InUse",
        "OperationAbortedException",
        "ConcurrentModification",
    }
)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code else None


def absent_on(codes: Collection[str], call: Callable[..., T], **kwargs: Any) -> T | None:
    """`call(**kwargs)`, or None when AWS answers with one of `codes` (e.g. NoSuchEntity)."""
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as exc:
        if error_code(exc) in codes:
            return None
        raise


@contextmanager
def translate_errors(step_id: str | None = None) -> Iterator[None]:
    """Turn botocore exceptions raised inside into ProvisioningError or InvalidInput."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
    )
    from botocore.parsers import ResponseParserError

    try:
        yield
    except PushPoolsError:
        raise
    except ClientError as exc:
        raise _from_client_error(exc, step_id) from exc
    except NoCredentialsError as exc:
        raise InvalidInput(NO_CREDENTIALS) from exc
    except EndpointConnectionError as exc:
        raise ProvisioningError(
            f"could not reach the AWS endpoint {exc.kwargs.get('endpoint_url', '')}: check the "
            "network, the region and any proxy settings",
            step_id=step_id,
            cloud=CLOUD,
        ) from exc
    except ParamValidationError as exc:
        # Our request was malformed: a bug in push-pools, or a name that slipped validation.
        raise ProvisioningError(
            f"invalid AWS request: {exc}", step_id=step_id, cloud=CLOUD
        ) from exc
    except (BotoCoreError, ResponseParserError) as exc:
        # ResponseParserError is no BotoCoreError: an endpoint answered with something that is
        # not AWS's wire format (a proxy's error page, an emulator's crash).
        raise ProvisioningError(f"AWS call failed: {exc}", step_id=step_id, cloud=CLOUD) from exc


def _from_client_error(exc: Any, step_id: str | None) -> PushPoolsError:
    code = error_code(exc) or "Unknown"
    operation = getattr(exc, "operation_name", "") or "the AWS call"
    aws_message = exc.response.get("Error", {}).get("Message", "")
    said = f"{code}: {aws_message}" if aws_message else code
    if code in _BAD_CREDENTIALS:
        return InvalidInput(
            f"AWS rejected the credentials ({code}) on {operation}: check AWS_PROFILE / "
            "--profile or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
            "temporary keys)"
        )
    if code in _INVALID:
        return InvalidInput(f"AWS refused {operation} as invalid ({said})")
    if code in _ACCESS_DENIED:
        message = (
            f"permission denied on {operation} ({said}); grant the identity you run push-pools "
            "as the permission, or run the pre-flight check to list every missing one"
        )
    elif code in _QUOTA:
        message = (
            f"an AWS quota was reached on {operation} ({said}); free some capacity or ask AWS "
            "for a higher quota, then run again"
        )
    elif code in _THROTTLED:
        message = f"AWS kept throttling {operation} after retries ({said}); run again later"
    elif code in _IN_USE:
        message = (
            f"{operation} failed because the resource is still in use ({said}); remove what "
            "depends on it (running tasks, resources added by hand) and run again"
        )
    else:
        message = f"{operation} failed ({said})"
    return ProvisioningError(message, step_id=step_id, cloud=CLOUD)
