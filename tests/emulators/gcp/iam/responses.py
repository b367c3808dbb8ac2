"""IAM admin v1 over gRPC: each method's request type, permission and answer.

Permission checks look at the project's policy and, for calls on one service account, at that
account's own policy too. A call on an account that does not exist, by a caller without the
permission on the project, is PERMISSION_DENIED, as Google answers it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.cloud import iam_admin_v1
from google.iam.v1 import iam_policy_pb2, policy_pb2  # type: ignore[import-untyped]
from google.protobuf import empty_pb2  # type: ignore[import-untyped]

from tests.emulators.gcp.errors import ApiError, permission_denied
from tests.emulators.gcp.grpc_server import GrpcMethod
from tests.emulators.gcp.iam.models import Key, ServiceAccount
from tests.emulators.gcp.policy import Binding, validated_bindings
from tests.emulators.gcp.resourcemanager.models import Project
from tests.emulators.gcp.state import GcpState
from tests.emulators.gcp.wire import page, to_datetime

__all__ = ["SERVICE", "methods"]

SERVICE = "google.iam.admin.v1.IAM"
_SERVICE_NAME = "iam.googleapis.com"


class IamResponses:
    def __init__(self, state: GcpState) -> None:
        self.state = state
        self.backend = state.iam

    # ------------------------------------------------------------------ accounts

    def create_service_account(
        self, request: iam_admin_v1.CreateServiceAccountRequest, principal: str
    ) -> iam_admin_v1.ServiceAccount:
        project = self._project(principal, request.name, "iam.serviceAccounts.create")
        account = self.backend.create_service_account(
            project,
            request.account_id,
            request.service_account.display_name,
            request.service_account.description,
        )
        return account_message(account)

    def get_service_account(
        self, request: iam_admin_v1.GetServiceAccountRequest, principal: str
    ) -> iam_admin_v1.ServiceAccount:
        account = self._account(principal, request.name, "iam.serviceAccounts.get")
        return account_message(account)

    def list_service_accounts(
        self, request: iam_admin_v1.ListServiceAccountsRequest, principal: str
    ) -> iam_admin_v1.ListServiceAccountsResponse:
        project = self._project(principal, request.name, "iam.serviceAccounts.list")
        accounts = self.backend.list_service_accounts(project)
        chunk, token = page(accounts, request.page_size or 100, request.page_token)
        return iam_admin_v1.ListServiceAccountsResponse(
            accounts=[account_message(a) for a in chunk], next_page_token=token
        )

    def delete_service_account(
        self, request: iam_admin_v1.DeleteServiceAccountRequest, principal: str
    ) -> empty_pb2.Empty:
        account = self._account(principal, request.name, "iam.serviceAccounts.delete")
        self.backend.delete_service_account(account)
        return empty_pb2.Empty()

    # ------------------------------------------------------------------ keys

    def create_service_account_key(
        self, request: iam_admin_v1.CreateServiceAccountKeyRequest, principal: str
    ) -> iam_admin_v1.ServiceAccountKey:
        account = self._account(principal, request.name, "iam.serviceAccountKeys.create")
        key, document = self.backend.create_service_account_key(account)
        return key_message(account, key, document)

    def list_service_account_keys(
        self, request: iam_admin_v1.ListServiceAccountKeysRequest, principal: str
    ) -> iam_admin_v1.ListServiceAccountKeysResponse:
        account = self._account(principal, request.name, "iam.serviceAccountKeys.list")
        wanted = {
            iam_admin_v1.ListServiceAccountKeysRequest.KeyType(t).name for t in request.key_types
        }
        keys = [k for k in account.keys.values() if not wanted or k.key_type in wanted]
        return iam_admin_v1.ListServiceAccountKeysResponse(
            keys=[key_message(account, k) for k in keys]
        )

    def get_service_account_key(
        self, request: iam_admin_v1.GetServiceAccountKeyRequest, principal: str
    ) -> iam_admin_v1.ServiceAccountKey:
        account_name = request.name.rpartition("/keys/")[0]
        self._account(principal, account_name, "iam.serviceAccountKeys.get")
        account, key = self.backend.find_key(request.name)
        return key_message(account, key)

    def delete_service_account_key(
        self, request: iam_admin_v1.DeleteServiceAccountKeyRequest, principal: str
    ) -> empty_pb2.Empty:
        account_name = request.name.rpartition("/keys/")[0]
        self._account(principal, account_name, "iam.serviceAccountKeys.delete")
        account, key = self.backend.find_key(request.name)
        self.backend.delete_service_account_key(account, key)
        return empty_pb2.Empty()

    # ------------------------------------------------------------------ the account's policy

    def get_iam_policy(
        self, request: iam_policy_pb2.GetIamPolicyRequest, principal: str
    ) -> policy_pb2.Policy:
        account = self._account(principal, request.resource, "iam.serviceAccounts.getIamPolicy")
        return _policy_pb(account)

    def set_iam_policy(
        self, request: iam_policy_pb2.SetIamPolicyRequest, principal: str
    ) -> policy_pb2.Policy:
        account = self._account(principal, request.resource, "iam.serviceAccounts.setIamPolicy")
        bindings = [Binding(b.role, list(b.members), None) for b in request.policy.bindings]
        validated_bindings(bindings, self.backend.validate_member)
        account.policy.replace(bindings, request.policy.etag or None, request.policy.version or 1)
        return _policy_pb(account)

    # ------------------------------------------------------------------ checks

    def _project(self, principal: str, name: str, permission: str) -> Project:
        return self.state.project_for(principal, name, permission, service=_SERVICE_NAME)

    def _account(self, principal: str, name: str, permission: str) -> ServiceAccount:
        """The named account, if the caller may `permission` on it (project or its policy)."""
        try:
            account = self.backend.find_account(name)
        except ApiError:
            project_ref = name.split("/")[1] if name.count("/") >= 3 else "-"
            project = self.state.projects.find(project_ref)
            if project is not None and self.state.access.allowed(
                principal, permission, project.project_id
            ):
                raise
            raise permission_denied(permission) from None
        project = self.state.projects.projects[account.project_id]
        if self.state.require_enabled_services:
            self.state.require_service(project, _SERVICE_NAME)
        self.state.access.require(principal, permission, account.project_id, None, account.policy)
        return account


def account_message(account: ServiceAccount) -> iam_admin_v1.ServiceAccount:
    return iam_admin_v1.ServiceAccount(
        name=account.name,
        project_id=account.project_id,
        unique_id=account.unique_id,
        email=account.email,
        display_name=account.display_name,
        description=account.description,
        etag=account.etag,
        oauth2_client_id=account.unique_id,
        disabled=account.disabled,
    )


def key_message(
    account: ServiceAccount, key: Key, private_key_data: bytes | None = None
) -> iam_admin_v1.ServiceAccountKey:
    """A key as IAM returns it; the private key JSON only in CreateServiceAccountKey's answer."""
    fields: dict[str, Any] = {
        "name": f"{account.name}/keys/{key.key_id}",
        "key_algorithm": iam_admin_v1.ServiceAccountKeyAlgorithm.KEY_ALG_RSA_2048,
        "valid_after_time": to_datetime(key.valid_after),
        "valid_before_time": to_datetime(key.valid_before),
        "key_origin": iam_admin_v1.ServiceAccountKeyOrigin.GOOGLE_PROVIDED,
        "key_type": getattr(iam_admin_v1.ListServiceAccountKeysRequest.KeyType, key.key_type),
        "disabled": key.disabled,
    }
    if private_key_data is not None:
        fields["private_key_type"] = (
            iam_admin_v1.ServiceAccountPrivateKeyType.TYPE_GOOGLE_CREDENTIALS_FILE
        )
        fields["private_key_data"] = private_key_data
    else:
        fields["public_key_data"] = key.public_pem
    return iam_admin_v1.ServiceAccountKey(**fields)


def _policy_pb(account: ServiceAccount) -> policy_pb2.Policy:
    policy = account.policy
    return policy_pb2.Policy(
        version=policy.version,
        etag=policy.etag,
        bindings=[policy_pb2.Binding(role=b.role, members=b.members) for b in policy.bindings],
    )


def _proto_plus(cls: Any) -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    return cls.deserialize, cls.serialize


def _pb(cls: Any) -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    return cls.FromString, cls.SerializeToString


def methods(state: GcpState) -> list[GrpcMethod]:
    r = IamResponses(state)
    return [
        _method(
            "CreateServiceAccount",
            _proto_plus(iam_admin_v1.CreateServiceAccountRequest),
            _proto_plus(iam_admin_v1.ServiceAccount),
            r.create_service_account,
            True,
        ),
        _method(
            "GetServiceAccount",
            _proto_plus(iam_admin_v1.GetServiceAccountRequest),
            _proto_plus(iam_admin_v1.ServiceAccount),
            r.get_service_account,
            False,
        ),
        _method(
            "ListServiceAccounts",
            _proto_plus(iam_admin_v1.ListServiceAccountsRequest),
            _proto_plus(iam_admin_v1.ListServiceAccountsResponse),
            r.list_service_accounts,
            False,
        ),
        _method(
            "DeleteServiceAccount",
            _proto_plus(iam_admin_v1.DeleteServiceAccountRequest),
            _pb(empty_pb2.Empty),
            r.delete_service_account,
            True,
        ),
        _method(
            "CreateServiceAccountKey",
            _proto_plus(iam_admin_v1.CreateServiceAccountKeyRequest),
            _proto_plus(iam_admin_v1.ServiceAccountKey),
            r.create_service_account_key,
            True,
        ),
        _method(
            "ListServiceAccountKeys",
            _proto_plus(iam_admin_v1.ListServiceAccountKeysRequest),
            _proto_plus(iam_admin_v1.ListServiceAccountKeysResponse),
            r.list_service_account_keys,
            False,
        ),
        _method(
            "GetServiceAccountKey",
            _proto_plus(iam_admin_v1.GetServiceAccountKeyRequest),
            _proto_plus(iam_admin_v1.ServiceAccountKey),
            r.get_service_account_key,
            False,
        ),
        _method(
            "DeleteServiceAccountKey",
            _proto_plus(iam_admin_v1.DeleteServiceAccountKeyRequest),
            _pb(empty_pb2.Empty),
            r.delete_service_account_key,
            True,
        ),
        _method(
            "GetIamPolicy",
            _pb(iam_policy_pb2.GetIamPolicyRequest),
            _pb(policy_pb2.Policy),
            r.get_iam_policy,
            False,
        ),
        _method(
            "SetIamPolicy",
            _pb(iam_policy_pb2.SetIamPolicyRequest),
            _pb(policy_pb2.Policy),
            r.set_iam_policy,
            True,
        ),
    ]


def _method(
    name: str,
    request: tuple[Callable[[bytes], Any], Callable[[Any], bytes]],
    response: tuple[Callable[[bytes], Any], Callable[[Any], bytes]],
    handler: Callable[[Any, str], Any],
    mutating: bool,
) -> GrpcMethod:
    return GrpcMethod(name, request[0], response[1], handler, mutating)
