"""Where push-pools finds its home, store, API and keys.

Read from the environment every time they are asked for, so that tests and the demo can point a
process at another home or server without re-importing anything.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_API_URL = "http://127.0.0.1:4200/api"


def home_dir() -> Path:
    """The directory holding the SQLite store and the encryption key file."""
    path = Path(os.environ.get("PUSH_POOLS_HOME") or Path.home() / ".push-pools").expanduser()
    # It holds the encryption key and the store: its owner's alone (0700), also when an older
    # version made it group- or world-readable.
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        status = path.stat()
        if status.st_mode & 0o077 and status.st_uid == os.getuid():
            path.chmod(0o700)
    except OSError:
        pass  # unreadable: the caller's own access fails with a clearer message
    return path


def database_url() -> str:
    """`PUSH_POOLS_DATABASE_URL`, or a SQLite file in the home directory."""
    url = os.environ.get("PUSH_POOLS_DATABASE_URL")
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            # psycopg 3 is the driver we ship; a bare postgresql:// URL would ask for psycopg2.
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    return f"sqlite:///{home_dir() / 'push-pools.db'}"


def api_url() -> str:
    return os.environ.get("PUSH_POOLS_API_URL", DEFAULT_API_URL).rstrip("/")


def api_key() -> str | None:
    return os.environ.get("PUSH_POOLS_API_KEY") or None


def encryption_key_env() -> str | None:
    return os.environ.get("PUSH_POOLS_ENCRYPTION_KEY") or None


def gcp_endpoint() -> str | None:
    """`PUSH_POOLS_GCP_ENDPOINT`, a testing setting: one endpoint (e.g.
    `http://127.0.0.1:8123`, the GCP emulator in tests/emulators/gcp) for every Google Cloud API
    push-pools calls, REST and gRPC alike, as `AWS_ENDPOINT_URL` points boto3 at moto. Unset:
    Google's own endpoints."""
    return (os.environ.get("PUSH_POOLS_GCP_ENDPOINT") or "").strip().rstrip("/") or None


def azure_endpoint() -> str | None:
    """`PUSH_POOLS_AZURE_ENDPOINT`, a testing setting: the Azure Resource Manager endpoint every
    Azure client push-pools makes talks to (e.g. `https://127.0.0.1:8443`, the emulator in
    tests/emulators/azure). Unset: `https://management.azure.com`. Sign-in follows
    azure-identity's own `AZURE_AUTHORITY_HOST`."""
    return (os.environ.get("PUSH_POOLS_AZURE_ENDPOINT") or "").strip().rstrip("/") or None


def azure_ca_bundle() -> str | None:
    """`PUSH_POOLS_AZURE_CA_BUNDLE`, a testing setting: a PEM file of certificates to trust for
    Azure's endpoints and sign-in (the emulator's self-signed one). Unset: the system's."""
    return (os.environ.get("PUSH_POOLS_AZURE_CA_BUNDLE") or "").strip() or None


def dispatch_lease_seconds() -> float:
    """`PUSH_POOLS_DISPATCH_LEASE_SECONDS` (default 30): how long a server's claim on a run
    with no submission recorded is left alone before another server (or this one, restarted
    after a crash) submits the run again, adopting what was started. Shorter recovers faster;
    longer spares a second lookup when a submit is slow (a cloud call with its retries)."""
    from push_pools.errors import InvalidInput

    raw = os.environ.get("PUSH_POOLS_DISPATCH_LEASE_SECONDS") or "30"
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0.5 <= seconds <= 86_400:
        raise InvalidInput(
            f"PUSH_POOLS_DISPATCH_LEASE_SECONDS={raw!r} is not a number of seconds between "
            "0.5 and 86400; unset it for the default of 30"
        )
    return seconds


MANAGED_ISOLATION_MODES = ("auto", "bwrap", "none")


def managed_isolation() -> str:
    """`PUSH_POOLS_MANAGED_ISOLATION`: how the server confines managed runs. `auto` (the default)
    runs them under bubblewrap when it works here and refuses them otherwise; `bwrap` requires
    it (the server does not start without it); `none` runs them unisolated, as the server's own
    user with its files in reach."""
    from push_pools.errors import InvalidInput

    raw = (os.environ.get("PUSH_POOLS_MANAGED_ISOLATION") or "auto").strip().lower()
    if raw not in MANAGED_ISOLATION_MODES:
        raise InvalidInput(
            f"PUSH_POOLS_MANAGED_ISOLATION={raw!r} is not one of "
            f"{', '.join(MANAGED_ISOLATION_MODES)}; unset it for auto"
        )
    return raw


def managed_uid() -> str | None:
    """`PUSH_POOLS_MANAGED_UID`: the user (name or number) managed runs drop to when the server
    runs as root; default `nobody`."""
    return (os.environ.get("PUSH_POOLS_MANAGED_UID") or "").strip() or None


HOST_ID_FILE = "host-id"
_HOST_ID_MAX = 200


def host_id() -> str:
    """`PUSH_POOLS_HOST_ID`, else an id made once and kept in the home directory: which host a
    server runs on. Managed runs belong to the host whose disk holds their sandbox; servers
    sharing a store tell hosts apart by it, so two homes on one machine count as two hosts."""
    from push_pools.errors import InvalidInput

    raw = (os.environ.get("PUSH_POOLS_HOST_ID") or "").strip()
    if raw:
        if len(raw) > _HOST_ID_MAX or not raw.isprintable():
            raise InvalidInput(
                f"PUSH_POOLS_HOST_ID must be at most {_HOST_ID_MAX} printable characters; "
                "unset it to use the id kept in PUSH_POOLS_HOME"
            )
        return raw
    path = home_dir() / HOST_ID_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing[:_HOST_ID_MAX]
    import secrets
    import socket

    # The machine's name for people reading "host ... stopped heartbeating"; the random part
    # keeps two homes on one machine apart.
    made = f"{socket.gethostname()[:80]}-{secrets.token_hex(4)}"
    tmp = path.with_name(f".{HOST_ID_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(made + "\n")
    try:
        # A link never overwrites: of two servers starting at once on one home, one id wins.
        os.link(tmp, path)
    except FileExistsError:
        made = path.read_text().strip() or made
    finally:
        tmp.unlink(missing_ok=True)
    return made


def host_timeout_seconds() -> float:
    """`PUSH_POOLS_HOST_TIMEOUT_SECONDS` (default 120): how long a host's heartbeat may stay
    unchanged, as seen from another server on the same store, before that server takes the host
    for dead and marks its managed runs Crashed. Shorter finds a dead host sooner; longer lets a
    server be down (an upgrade, a restart) that long without losing the runs it left going."""
    from push_pools.errors import InvalidInput

    raw = os.environ.get("PUSH_POOLS_HOST_TIMEOUT_SECONDS") or "120"
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 1 <= seconds <= 86_400:
        raise InvalidInput(
            f"PUSH_POOLS_HOST_TIMEOUT_SECONDS={raw!r} is not a number of seconds between 1 and "
            "86400; unset it for the default of 120"
        )
    return seconds
