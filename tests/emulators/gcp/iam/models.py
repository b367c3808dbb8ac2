"""Service accounts and their keys: the principals every token resolves to.

A key is a real RSA key pair; only its public half is kept after creation (as at Google, the
private key is handed out once, inside a service-account key JSON whose `token_uri` is the
emulator's). Deleting an account turns its bindings into `deleted:serviceAccount:...?uid=...`
members, as Google does, and every token of it stops working.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.emulators.gcp.auth import VerifyingKey
from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.policy import Policy
from tests.emulators.gcp.resourcemanager.models import Project, ProjectsBackend

__all__ = ["IamBackend", "Key", "ServiceAccount"]

_ACCOUNT_ID = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])$")
_MAX_USER_KEYS = 10
# Google's user-managed keys never expire unless an org policy says so.
_NEVER = 253402300799.0  # 9999-12-31T23:59:59Z


@dataclass
class Key:
    key_id: str
    account_email: str
    public_key: rsa.RSAPublicKey
    valid_after: float
    valid_before: float
    key_type: str = "USER_MANAGED"
    disabled: bool = False

    @property
    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class ServiceAccount:
    project_id: str
    account_id: str
    unique_id: str
    display_name: str = ""
    description: str = ""
    disabled: bool = False
    etag: bytes = field(default_factory=lambda: secrets.token_bytes(8))
    policy: Policy = field(default_factory=Policy)
    keys: dict[str, Key] = field(default_factory=dict)

    @property
    def email(self) -> str:
        return f"{self.account_id}@{self.project_id}.iam.gserviceaccount.com"

    @property
    def name(self) -> str:
        return f"projects/{self.project_id}/serviceAccounts/{self.email}"

    def user_keys(self) -> list[Key]:
        return [k for k in self.keys.values() if k.key_type == "USER_MANAGED"]


class IamBackend:
    def __init__(
        self,
        projects: ProjectsBackend,
        clock: Callable[[], float],
        token_uri: Callable[[], str],
    ) -> None:
        self.projects = projects
        self.clock = clock
        self.token_uri = token_uri
        self.accounts: dict[str, ServiceAccount] = {}
        # Projects under an org policy constraints/iam.disableServiceAccountKeyCreation.
        self.key_creation_forbidden: set[str] = set()

    # ------------------------------------------------------------------ accounts

    def create_service_account(
        self,
        project: Project,
        account_id: str,
        display_name: str = "",
        description: str = "",
        *,
        strict: bool = True,
    ) -> ServiceAccount:
        """`strict=False` (test set-up only) skips the account-id rules, so that a test's
        "owner" (5 letters, one short of Google's minimum) can exist."""
        valid = 6 <= len(account_id) <= 30 and _ACCOUNT_ID.match(account_id)
        if strict and not valid:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid form of account ID {account_id}. Should be "
                "[Regex: [a-z]([-a-z0-9]*[a-z0-9]) with length [6, 30]].",
            )
        email = f"{account_id}@{project.project_id}.iam.gserviceaccount.com"
        if email in self.accounts:
            raise ApiError(
                "ALREADY_EXISTS",
                f"Service account {account_id} already exists within project "
                f"projects/{project.project_id}.",
            )
        account = ServiceAccount(
            project.project_id,
            account_id,
            unique_id="1" + "".join(secrets.choice("0123456789") for _ in range(20)),
            display_name=display_name,
            description=description,
        )
        # Google keeps a system-managed key for every account; listing keys shows it.
        system_key = self._new_key(account, "SYSTEM_MANAGED")[0]
        account.keys[system_key.key_id] = system_key
        self.accounts[email] = account
        return account

    def find_account(self, name: str) -> ServiceAccount:
        """`projects/{P|-}/serviceAccounts/{email|unique id}`, or NOT_FOUND."""
        ref = name.rsplit("/serviceAccounts/", 1)[-1]
        account = self.accounts.get(ref)
        if account is None:
            account = next((a for a in self.accounts.values() if a.unique_id == ref), None)
        if account is None:
            raise ApiError("NOT_FOUND", f"Unknown service account: {ref}")
        return account

    def list_service_accounts(self, project: Project) -> list[ServiceAccount]:
        return sorted(
            (a for a in self.accounts.values() if a.project_id == project.project_id),
            key=lambda a: a.email,
        )

    def delete_service_account(self, account: ServiceAccount) -> None:
        del self.accounts[account.email]
        old = f"serviceAccount:{account.email}"
        new = f"deleted:serviceAccount:{account.email}?uid={account.unique_id}"
        policies = [p.policy for p in self.projects.projects.values()]
        policies += [a.policy for a in self.accounts.values()]
        for policy in policies:
            for binding in policy.bindings:
                binding.members = [new if m == old else m for m in binding.members]

    # ------------------------------------------------------------------ keys

    def create_service_account_key(self, account: ServiceAccount) -> tuple[Key, bytes]:
        """A new user-managed key and its service-account key JSON (private key included)."""
        if account.project_id in self.key_creation_forbidden:
            raise ApiError(
                "FAILED_PRECONDITION",
                "Key creation is not allowed on this service account. "
                "(constraints/iam.disableServiceAccountKeyCreation)",
            )
        if len(account.user_keys()) >= _MAX_USER_KEYS:
            raise ApiError("FAILED_PRECONDITION", "Precondition check failed.")
        key, private_key = self._new_key(account, "USER_MANAGED")
        account.keys[key.key_id] = key
        return key, self.key_json(account, key, private_key)

    def find_key(self, name: str) -> tuple[ServiceAccount, Key]:
        account_name, _, key_id = name.rpartition("/keys/")
        account = self.find_account(account_name)
        key = account.keys.get(key_id)
        if key is None:
            raise ApiError("NOT_FOUND", f"Service account key {key_id} does not exist.")
        return account, key

    def delete_service_account_key(self, account: ServiceAccount, key: Key) -> None:
        if key.key_type != "USER_MANAGED":
            raise ApiError("INVALID_ARGUMENT", "Cannot delete a system-managed key.")
        del account.keys[key.key_id]

    def key_json(self, account: ServiceAccount, key: Key, private_key: rsa.RSAPrivateKey) -> bytes:
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        document = {
            "type": "service_account",
            "project_id": account.project_id,
            "private_key_id": key.key_id,
            "private_key": pem,
            "client_email": account.email,
            "client_id": account.unique_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
            + account.email.replace("@", "%40"),
            "universe_domain": "googleapis.com",
        }
        return json.dumps(document, indent=2).encode()

    def _new_key(self, account: ServiceAccount, key_type: str) -> tuple[Key, rsa.RSAPrivateKey]:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = self.clock()
        key = Key(
            secrets.token_hex(20),
            account.email,
            private_key.public_key(),
            valid_after=now,
            valid_before=_NEVER if key_type == "USER_MANAGED" else now + 14 * 86400,
            key_type=key_type,
        )
        return key, private_key

    # ------------------------------------------------------------------ for token checks

    def verifying_key(self, key_id: str) -> VerifyingKey | None:
        for account in self.accounts.values():
            key = account.keys.get(key_id)
            if key is not None and not key.disabled and key.key_type == "USER_MANAGED":
                return VerifyingKey(key.key_id, account.email, key.public_key)
        return None

    def account_active(self, email: str) -> bool:
        account = self.accounts.get(email)
        return account is not None and not account.disabled

    def validate_member(self, member: str) -> None:
        """setIamPolicy names a service account of a project we know: it must exist."""
        if not member.startswith("serviceAccount:"):
            return
        email = member.removeprefix("serviceAccount:")
        local, _, domain = email.partition("@")
        project_id = domain.removesuffix(".iam.gserviceaccount.com")
        if project_id != domain and project_id in self.projects.projects:
            if email not in self.accounts:
                raise ApiError("INVALID_ARGUMENT", f"Service account {email} does not exist.")
