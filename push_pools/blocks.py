"""Blocks: typed, stored configuration, above all cloud credentials.

This module knows the block types, validates and normalises a block's fields, splits them into a
public part (stored and shown as is) and a secret part (stored only Fernet-encrypted, shown only
masked). It does no I/O beyond the encryption key file: the store and the API call into it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from push_pools.errors import InvalidInput
from push_pools.settings import encryption_key_env, home_dir

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

MASK = "********"
KEY_FILE_NAME = "encryption.key"
FIELD_KINDS = ("string", "json", "integer", "boolean")

# Shorter strings match too much ordinary text to be worth masking in logs.
MIN_MASKED_LENGTH = 4

_GENERATE_KEY_HINT = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
_TRUE_WORDS = frozenset({"true", "yes", "y", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "n", "off", "0"})


@dataclass(frozen=True)
class BlockField:
    name: str
    description: str
    secret: bool = False
    required: bool = False
    kind: str = "string"  # one of FIELD_KINDS; "json" means a JSON object (a dict)

    def __post_init__(self) -> None:
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"field {self.name!r}: kind must be one of {FIELD_KINDS}")


@dataclass(frozen=True)
class BlockType:
    slug: str
    description: str
    fields: tuple[BlockField, ...]

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def get_field(self, name: str) -> BlockField:
        """The field called `name`; InvalidInput naming the allowed fields otherwise."""
        for block_field in self.fields:
            if block_field.name == name:
                return block_field
        raise InvalidInput(
            f"unknown field {name!r} for block type '{self.slug}'; "
            f"allowed fields: {', '.join(self.field_names)}"
        )


_BLOCK_TYPES: tuple[BlockType, ...] = (
    BlockType(
        slug="aws-credentials",
        description=(
            "Credentials for Amazon Web Services. Give an access key pair (plus a session token "
            "for temporary credentials), or only a profile name from ~/.aws/config; fields left "
            "out fall back to the standard AWS credential chain."
        ),
        fields=(
            BlockField(
                "aws_access_key_id",
                "Access key ID of an IAM user or role, e.g. AKIAIOSFODNN7EXAMPLE.",
            ),
            BlockField(
                "aws_secret_access_key",
                "Secret access key paired with the access key ID.",
                secret=True,
            ),
            BlockField(
                "aws_session_token",
                "Session token, needed only for temporary credentials (STS, SSO).",
                secret=True,
            ),
            BlockField("region_name", "Default AWS region, e.g. eu-west-1."),
            BlockField("profile_name", "Named profile from the AWS config/credentials files."),
        ),
    ),
    BlockType(
        slug="gcp-credentials",
        description=(
            "Credentials for Google Cloud. Give a service-account key (the JSON file downloaded "
            "from IAM); without one, Application Default Credentials are used."
        ),
        fields=(
            BlockField(
                "service_account_info",
                "Contents of a service-account JSON key file (on the CLI: "
                "service_account_info=@path/to/key.json).",
                secret=True,
                kind="json",
            ),
            BlockField(
                "project",
                "Google Cloud project ID; defaults to the service account's project.",
            ),
        ),
    ),
    BlockType(
        slug="azure-credentials",
        description=(
            "Credentials for Microsoft Azure: a service principal (tenant, client ID and client "
            "secret) and the subscription to work in."
        ),
        fields=(
            BlockField("tenant_id", "Microsoft Entra ID (Azure AD) tenant ID (a GUID)."),
            BlockField("client_id", "Application (client) ID of the service principal."),
            BlockField("client_secret", "Client secret of the service principal.", secret=True),
            BlockField("subscription_id", "Azure subscription ID to create resources in."),
        ),
    ),
    BlockType(
        slug="secret",
        description=(
            "A single secret string, such as an API token or a password. Stored encrypted and "
            "never shown in full."
        ),
        fields=(BlockField("value", "The secret value.", secret=True, required=True),),
    ),
    BlockType(
        slug="json",
        description="A JSON object of arbitrary, non-secret configuration.",
        fields=(BlockField("value", "The JSON object.", required=True, kind="json"),),
    ),
)


def block_types() -> list[BlockType]:
    """Every block type push-pools knows, in the order the CLI lists them."""
    return list(_BLOCK_TYPES)


def get_block_type(slug: str) -> BlockType:
    wanted = slug.strip().lower()
    for block_type in _BLOCK_TYPES:
        if block_type.slug == wanted:
            return block_type
    choices = ", ".join(t.slug for t in _BLOCK_TYPES)
    raise InvalidInput(f"unknown block type {slug!r}; choose one of: {choices}")


def _coerce(block_type: BlockType, block_field: BlockField, value: Any) -> Any:
    """Check `value` against the field's kind, converting text where the kind allows it.

    Text is converted so that CLI strings and form-style API payloads need no client-side typing.
    Error messages name the field but never echo the value, which may be a secret.
    """
    where = f"field '{block_field.name}' of block type '{block_type.slug}'"
    kind = block_field.kind
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidInput(f"{where} must be a string, got {type(value).__name__}")
        return value
    if kind == "json":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InvalidInput(
                    f"{where} must be a JSON object, but the text is not valid JSON: "
                    f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
                ) from None
        if not isinstance(value, dict):
            raise InvalidInput(f"{where} must be a JSON object, got {type(value).__name__}")
        try:
            # Round-tripping rejects values the store could not serialise later.
            return json.loads(json.dumps(value))
        except (TypeError, ValueError):
            raise InvalidInput(f"{where} holds values that are not JSON-serialisable") from None
    if kind == "integer":
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise InvalidInput(f"{where} must be an integer") from None
        # bool is a subclass of int; True is not a sensible port number.
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{where} must be an integer, got {type(value).__name__}")
        return value
    # kind == "boolean"
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise InvalidInput(f"{where} must be a boolean (true/false, yes/no, 1/0)")
    if not isinstance(value, bool):
        raise InvalidInput(f"{where} must be a boolean, got {type(value).__name__}")
    return value


def _read_json_file(block_field: BlockField, path_text: str) -> str:
    path = Path(path_text).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the file for field '{block_field.name}' ({path}): {exc.strerror}"
        ) from None


def parse_field_assignments(block_type: BlockType, assignments: list[str]) -> dict[str, Any]:
    """Turn CLI `--set field=value` strings into a dict of typed values.

    Only the first "=" splits, so values may contain "=". For json fields, "@path" reads the JSON
    from a file: a service-account key is unwieldy on a command line and would sit in the shell
    history (JSON text never starts with "@", so this is unambiguous).
    """
    result: dict[str, Any] = {}
    for assignment in assignments:
        name, sep, raw = assignment.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidInput(
                f"expected field=value, got {assignment.split('=', 1)[0]!r}; "
                f"fields of '{block_type.slug}': {', '.join(block_type.field_names)}"
            )
        block_field = block_type.get_field(name)
        if name in result:
            # Setting a field twice is almost surely a typo for another field; don't guess.
            raise InvalidInput(f"field '{name}' is set more than once")
        if block_field.kind == "json" and raw.startswith("@"):
            raw = _read_json_file(block_field, raw[1:])
        result[name] = _coerce(block_type, block_field, raw)
    return result


def validate_block_data(block_type: BlockType, data: dict[str, Any]) -> dict[str, Any]:
    """Check a block's fields and return them normalised.

    None means "not set" and is dropped, so API clients may send explicit nulls. A required
    field that is absent, None or the empty string counts as missing.
    """
    if not isinstance(data, dict):
        raise InvalidInput(
            f"block data for '{block_type.slug}' must be an object of field names to values"
        )
    unknown = [str(name) for name in data if name not in block_type.field_names]
    if unknown:
        raise InvalidInput(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for block type '{block_type.slug}'; "
            f"allowed fields: {', '.join(block_type.field_names)}"
        )
    normalised: dict[str, Any] = {}
    for block_field in block_type.fields:
        value = data.get(block_field.name)
        if value is None:
            continue
        normalised[block_field.name] = _coerce(block_type, block_field, value)
    missing = [
        f.name for f in block_type.fields if f.required and normalised.get(f.name) in (None, "")
    ]
    if missing:
        raise InvalidInput(
            f"block type '{block_type.slug}' needs {', '.join(missing)}; "
            f"set {'them' if len(missing) > 1 else 'it'} with "
            + " ".join(f"--set {name}=..." for name in missing)
        )
    return normalised


def _is_secret(block_type: BlockType, name: str) -> bool:
    # A key the type doesn't declare (e.g. data saved by an older version) is treated as secret:
    # wrongly hiding a value is harmless, wrongly showing or storing it in clear is not.
    for block_field in block_type.fields:
        if block_field.name == name:
            return block_field.secret
    return True


def split_secret_fields(
    block_type: BlockType, data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public, secret): the secret part is what must only be stored encrypted."""
    public: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for name, value in data.items():
        (secret if _is_secret(block_type, name) else public)[name] = value
    return public, secret


def mask(block_type: BlockType, data: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` fit to show: each secret value set becomes MASK, whatever its length.

    None stays None so that "not set" is still distinguishable from "set, hidden".
    """
    return {
        name: MASK if value is not None and _is_secret(block_type, name) else value
        for name, value in data.items()
    }


def _strings_in(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def secret_strings(block_type: BlockType, data: dict[str, Any]) -> list[str]:
    """The strings to give mask_in_text for a block's secret values.

    json secrets (a GCP key) are flattened to their string leaves. Multi-line values also
    contribute each line and their JSON-escaped form, because a log shows a PEM key either line by
    line or as one escaped string, rarely verbatim.
    """
    found: list[str] = []
    for name, value in data.items():
        if not _is_secret(block_type, name):
            continue
        for text in _strings_in(value):
            found.append(text)
            if "\n" in text:
                found.extend(line.strip() for line in text.splitlines())
                found.append(json.dumps(text)[1:-1])
    return list(dict.fromkeys(s for s in found if len(s) >= MIN_MASKED_LENGTH))


def mask_in_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (of at least 4 characters) by MASK."""
    unique = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_MASKED_LENGTH}
    if not unique:
        return text
    # One pass, longest first: a secret containing another is hidden whole, and MASK itself
    # is never re-scanned.
    pattern = re.compile("|".join(re.escape(s) for s in sorted(unique, key=len, reverse=True)))
    return pattern.sub(MASK, text)


def _fernet(key: bytes | str, source: str) -> Fernet:
    # cryptography is imported only when a key is used: about 8 MiB of an idle server's memory.
    from cryptography.fernet import Fernet

    raw = key.strip().encode("ascii", "replace") if isinstance(key, str) else key.strip()
    try:
        return Fernet(raw)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"{source} is not a valid Fernet key (32 url-safe base64-encoded bytes); "
            f"make one with: {_GENERATE_KEY_HINT}"
        ) from None


def _load_or_create_key_file(path: Path) -> bytes:
    if not path.exists():
        _create_key_file(path)
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read the encryption key file {path}: {exc.strerror}") from None


def _create_key_file(path: Path) -> None:
    """Create `path` holding a new key, unless another process gets there first.

    The key is written to a private temporary file and hard-linked into place: the link either
    appears complete or fails with FileExistsError, so a concurrent process never reads a
    half-written key and a crash never leaves an empty key file behind.
    """
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(8).hex()}.tmp")
    # O_EXCL with mode 0600 at creation: never world-readable, not even before a chmod.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; everyone uses its key
    finally:
        tmp.unlink(missing_ok=True)


class SecretBox:
    """Fernet encryption of a block's secret fields."""

    def __init__(self, key: bytes | str) -> None:
        # Only the Fernet object is kept, so the raw key never appears in a repr or traceback.
        self._fernet = _fernet(key, "the encryption key")

    def __repr__(self) -> str:
        return "SecretBox(key=********)"

    # Where the key came from, for messages ("the key in /home/x/.push-pools/encryption.key").
    source = "the encryption key"

    @classmethod
    def _from_key(cls, key: bytes | str, source: str) -> SecretBox:
        # Like __init__, but an invalid key is reported by where it came from.
        box = cls.__new__(cls)
        box._fernet = _fernet(key, source)
        box.source = source
        return box

    @classmethod
    def key_source(cls) -> tuple[str, Path | None]:
        """Where from_environment() takes the key: (description, key file or None)."""
        if encryption_key_env() is not None:
            return "PUSH_POOLS_ENCRYPTION_KEY", None
        path = home_dir() / KEY_FILE_NAME
        return f"the key in {path}", path

    def can_decrypt(self, token: str) -> bool:
        from cryptography.fernet import InvalidToken

        try:
            self._fernet.decrypt(token)
        except (InvalidToken, TypeError, ValueError):
            return False
        return True

    @classmethod
    def from_environment(cls, create: bool = True) -> SecretBox:
        """Key from PUSH_POOLS_ENCRYPTION_KEY, else from (or, if `create`, newly made in) the
        home directory."""
        env_key = encryption_key_env()
        if env_key is not None:
            return cls._from_key(env_key, "PUSH_POOLS_ENCRYPTION_KEY")
        path = home_dir() / KEY_FILE_NAME
        if not create and not path.exists():
            raise InvalidInput(
                f"no encryption key: {path} does not exist and PUSH_POOLS_ENCRYPTION_KEY is not set"
            )
        key = _load_or_create_key_file(path)
        try:
            return cls._from_key(key, f"the key in {path}")
        except InvalidInput as exc:
            raise InvalidInput(
                f"{exc.message}. Restore the original file, or delete it to have a new key made "
                "(blocks saved with the old key then cannot be decrypted)."
            ) from None

    def encrypt(self, secret: dict[str, Any]) -> str:
        try:
            plaintext = json.dumps(secret, separators=(",", ":"))
        except (TypeError, ValueError):
            raise InvalidInput("block secrets must be JSON-serialisable") from None
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> dict[str, Any]:
        from cryptography.fernet import InvalidToken

        try:
            plaintext = self._fernet.decrypt(token)
        except (InvalidToken, TypeError, ValueError):
            raise InvalidInput(
                "cannot decrypt block secrets: the encryption key changed? Use the key the block "
                "was saved with (PUSH_POOLS_ENCRYPTION_KEY, or the encryption.key file in "
                "PUSH_POOLS_HOME), or delete the block and create it again."
            ) from None
        try:
            value = json.loads(plaintext)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise InvalidInput("decrypted block secrets are not a JSON object; the data is corrupt")
        return value
