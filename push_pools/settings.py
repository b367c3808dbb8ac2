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
