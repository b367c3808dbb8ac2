"""Whether managed runs can be isolated on this host: decided once, when the server starts.

`detect()` reads PUSH_POOLS_MANAGED_ISOLATION and PUSH_POOLS_MANAGED_UID, finds bwrap, env and
setpriv, lists what runs must not see, and proves the confinement works with a trial run: the
server's interpreter importing push_pools, confined exactly as a run is and as the run's uid,
must find its work directory writable and a file of the server's home invisible. The answer, an
`Isolation`, goes to the managed executor (which refuses runs when isolation is unavailable) and
to the API (the `isolation` field of managed pools). How a run is confined: bwrap.py.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from push_pools import settings
from push_pools.errors import InvalidInput
from push_pools.managed.bwrap import Confinement, interpreter_paths

__all__ = ["FIX", "Isolation", "detect"]

FIX = (
    "install bubblewrap (apt-get install bubblewrap) or set PUSH_POOLS_MANAGED_ISOLATION=none "
    "to run managed flows unisolated"
)
# Generous, for a loaded machine: the trial normally takes about 0.1 s.
PROBE_TIMEOUT_SECONDS = 20.0
# Credentials the server's user may keep in its home: a server that is not root runs its runs
# as that same user, so file permissions alone do not keep these from them.
USER_SECRETS = (
    ".ssh",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".kube",
    ".docker",
    ".gnupg",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".pypirc",
    ".push-pools",
)
# The host's: container and Kubernetes secrets (service-account tokens), the Docker socket.
HOST_SECRETS = ("/run/secrets", "/var/run/secrets", "/run/docker.sock", "/var/run/docker.sock")
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Isolation:
    # "bwrap": runs are confined; "none": opted out; "unavailable": runs are refused.
    mode: str
    reason: str = ""
    confinement: Confinement | None = None

    def describe(self) -> str:
        """What `work-pool inspect` shows: bwrap, none, or unavailable: <why>."""
        return f"unavailable: {self.reason}" if self.mode == "unavailable" else self.mode

    def refusal(self) -> str:
        return (
            f"managed runs are refused on this server: isolation is unavailable ({self.reason}); "
            f"{FIX}"
        )

    def startup_line(self) -> str:
        if self.mode == "bwrap":
            uid = self.confinement.uid if self.confinement is not None else None
            who = f"uid {uid}" if uid is not None else "the server's own user"
            return f"managed runs are isolated with bubblewrap, as {who}"
        if self.mode == "none":
            return (
                "managed runs are NOT isolated (PUSH_POOLS_MANAGED_ISOLATION=none): a flow on a "
                "managed pool can read the server's encryption key, its store and other runs"
            )
        return f"managed runs will be refused: isolation is unavailable ({self.reason}); {FIX}"


class _Unavailable(Exception):
    pass


def detect(*, home: Path | None = None, database_url: str | None = None) -> Isolation:
    """The isolation managed runs get here. Raises InvalidInput for a bad setting, and when
    PUSH_POOLS_MANAGED_ISOLATION=bwrap but bubblewrap does not work."""
    mode = settings.managed_isolation()
    if mode == "none":
        return Isolation("none")
    home = Path(home) if home is not None else settings.home_dir()
    uid, gid = _run_as()
    try:
        confinement = _confinement(home, database_url or settings.database_url(), uid, gid)
        _probe(confinement, home)
    except _Unavailable as exc:
        if mode == "bwrap":
            raise InvalidInput(
                f"PUSH_POOLS_MANAGED_ISOLATION=bwrap, but managed runs cannot be isolated here: "
                f"{exc}; install bubblewrap (apt-get install bubblewrap) or unset the setting"
            ) from None
        return Isolation("unavailable", str(exc))
    return Isolation("bwrap", confinement=confinement)


def _run_as() -> tuple[int | None, int | None]:
    """The uid and gid runs drop to: PUSH_POOLS_MANAGED_UID or nobody when root, else none."""
    wanted = settings.managed_uid()
    if os.geteuid() != 0:
        if wanted is not None and _user(wanted)[0] != os.geteuid():
            raise InvalidInput(
                f"PUSH_POOLS_MANAGED_UID={wanted!r} needs the server to run as root (it runs as "
                f"uid {os.geteuid()}, and managed runs run as that user); unset it"
            )
        return None, None
    uid, gid = _user(wanted or "nobody")
    if uid == 0 or gid == 0:
        raise InvalidInput(
            f"PUSH_POOLS_MANAGED_UID={wanted!r} is root or in group root; managed runs must run "
            "as an unprivileged user (unset it for nobody)"
        )
    return uid, gid


def _user(name: str) -> tuple[int, int]:
    if name.isdigit():
        uid = int(name)
        try:
            return uid, pwd.getpwuid(uid).pw_gid
        except KeyError:
            return uid, uid
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if name == "nobody":  # no passwd entry for it: the conventional number
            return 65534, 65534
        raise InvalidInput(
            f"PUSH_POOLS_MANAGED_UID={name!r}: no such user; give a user name or a number"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _confinement(home: Path, database_url: str, uid: int | None, gid: int | None) -> Confinement:
    tools = {}
    for tool, package in (("bwrap", "bubblewrap"), ("env", "coreutils"), ("setpriv", "util-linux")):
        found = shutil.which(tool)
        if found is None:
            raise _Unavailable(f"{tool} ({package}) not found on PATH")
        tools[tool] = os.path.abspath(found)
    user_home = Path.home()
    hide: list[str | Path] = [home, *_sqlite_files(database_url)]
    hide += [p for p in (user_home / name for name in USER_SECRETS) if os.path.lexists(p)]
    hide += [p for p in HOST_SECRETS if os.path.lexists(p)]
    return Confinement(tools["bwrap"], tools["env"], tools["setpriv"], uid, gid).hiding(*hide)


def _package_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def _site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({os.path.realpath(paths["purelib"]), os.path.realpath(paths["platlib"])})


def _sqlite_files(url: str) -> list[str]:
    """The database file and its companions, for a SQLite store kept anywhere."""
    if not url.startswith("sqlite"):
        return []
    path = url.partition(":///")[2].partition("?")[0]
    if not path or path == ":memory:":
        return []
    base = os.path.realpath(path)
    return [base + suffix for suffix in SQLITE_SUFFIXES]


def _probe(confinement: Confinement, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".isolation-trial-", dir=home) as scratch:
        work = Path(scratch) / "work"
        work.mkdir()
        confinement.hand_over(work)
        secret = Path(scratch) / "secret"
        secret.write_text("a run must not see this\n")
        # -I -S: no site-packages import, so the trial costs ~20 ms rather than a full start;
        # whether the run's uid can read push_pools and its dependencies is checked directly.
        stdlib = Path(sysconfig.get_paths()["stdlib"]) / "os.py"
        needed = [str(p) for p in (stdlib, _package_dir() / "engine.py", *map(Path, _site_dirs()))]
        code = (
            "import os\n"
            f"seen = os.path.exists({str(secret)!r})\n"
            f"unreadable = [p for p in {needed!r} if not os.access(p, os.R_OK)]\n"
            "open('trial', 'w').write(f'{os.getuid()} {seen} {unreadable}')\n"
        )
        argv = confinement.command(
            [sys.executable, "-I", "-S", "-c", code],
            writable=[work],
            readable=confinement.exposable(interpreter_paths()),
            chdir=work,
        )
        env = {"PATH": os.environ.get("PATH") or os.defpath}
        try:
            done = subprocess.run(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=PROBE_TIMEOUT_SECONDS,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _Unavailable(f"a trial run under bwrap failed: {exc}") from exc
        try:
            seen = (work / "trial").read_text()
        except OSError:
            seen = ""
    uid = confinement.uid if confinement.uid is not None else os.geteuid()
    if done.returncode == 0 and seen == f"{uid} False []":
        return
    if done.returncode == 0 and seen.startswith(f"{uid} False ["):
        raise _Unavailable(
            f"uid {uid} cannot read {seen.partition(' False ')[2]}: make the directories above "
            "them readable and searchable by that user (chmod o+rx), or name a user who can "
            "read them in PUSH_POOLS_MANAGED_UID"
        )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if lines:
        detail = lines[-1].strip()
    elif done.returncode != 0:
        detail = f"exit status {done.returncode}"
    else:
        detail = f"it reported {seen!r}, not uid {uid} with the server's files hidden"
    raise _Unavailable(f"a trial run under bwrap failed: {detail}")
