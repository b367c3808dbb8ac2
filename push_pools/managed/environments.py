"""Virtual environments for managed runs' `pip_packages`, built once and cached.

A set of packages maps to `envs/<key>`, where the key is a sha256 of the sorted, normalized
requirement strings, the Python version and the server interpreter the env builds on. The second
run asking for the same set finds `envs/<key>` ready and installs nothing.

How the engine stays importable: the new env gets a .pth file naming the server interpreter's
site-packages (and the directory holding the push_pools package). Lines of a .pth file are
appended to sys.path, so the env's own packages come first and win over the server's copies,
while push_pools and its dependencies are still found. The .pth file is written only after the
install, so the installer does not see the server's packages and skip ones the user asked for.

Why not build in a temporary directory and rename it into place: a virtual env is not
relocatable (console scripts carry its absolute path in their shebang). So each env is built in
its final real directory `.<key>.<random>` and then published by atomically replacing the
symlink `<key>` to it. A failed or interrupted build is never published and is removed, so it
cannot poison the cache; builds of the same key are serialized with an fcntl lock file, so two
runs starting together install once.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "BuildConfinement",
    "Environment",
    "InstallFailed",
    "ensure_environment",
    "environment_key",
    "normalize_packages",
]

READY_MARKER = "push-pools-env.json"
PTH_NAME = "_push_pools_server.pth"
TAIL_LINES = 20
# Installer settings users may put in the job env (e.g. a private index); they change what gets
# installed, so they are part of the cache key.
INSTALLER_ENV_PREFIXES = ("PIP_", "UV_")

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Environment:
    # The interpreter runs use: the env's, or the server's own when no packages were asked for.
    python: Path
    # The env's directory (resolved), None for the server's interpreter.
    path: Path | None = None
    key: str | None = None
    created: bool = False

    @property
    def bin_dir(self) -> Path | None:
        return self.python.parent if self.path is not None else None


class InstallFailed(Exception):
    """The installer failed; `lines` are its last output lines, for the run's crash message."""

    def __init__(self, message: str, lines: list[str], exit_code: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.lines = lines
        self.exit_code = exit_code


class BuildConfinement(Protocol):
    """How a build is confined (bwrap.ConfinedInstall): the installer runs a user's package
    list, and with it any build code those packages bring."""

    def prepare(self, build: Path) -> None:
        """Create the (empty) build directory, writable for the installer."""

    def command(self, argv: list[str], build: Path) -> list[str]:
        """`argv` confined, able to write only into `build` (and the installer's own home)."""

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """The installer's environment."""

    def release(self, build: Path) -> None:
        """After a successful build: make it unchangeable for the installer's (and runs') uid."""


def normalize_packages(packages: Iterable[object]) -> list[str]:
    """Sorted, deduplicated requirement strings, with names normalized as PEP 503 does.

    So "Six == 1.16.0" and "six==1.16.0" share one cached env. Only the name and the version
    specifiers are normalized; URLs and environment markers are kept as written.
    """
    normalized: set[str] = set()
    for package in packages:
        if not isinstance(package, str):
            raise InstallFailed(
                f"pip_packages must be requirement strings such as 'pandas==2.2.2', got "
                f"{package!r}",
                [],
                None,
            )
        text = " ".join(package.split())
        if not text:
            continue
        if text.startswith("-"):
            # Would reach the installer as an option (-r file, --index-url ...).
            raise InstallFailed(
                f"pip_packages entry {package!r} looks like an installer option; give package "
                "requirements only (set PIP_INDEX_URL or PIP_EXTRA_INDEX_URL in env for "
                "another index)",
                [],
                None,
            )
        match = _NAME.match(text)
        if match and "@" not in text and "://" not in text:
            name, rest = match.groups()
            specifiers, semicolon, marker = rest.partition(";")
            text = re.sub(r"[-_.]+", "-", name).lower() + "".join(specifiers.split())
            if semicolon:
                text += "; " + marker.strip()
        normalized.add(text)
    return sorted(normalized)


def _site_dirs() -> list[str]:
    """Where the server's interpreter finds push_pools' dependencies."""
    paths = sysconfig.get_paths()
    dirs: list[str] = []
    for name in ("purelib", "platlib"):
        path = os.path.realpath(paths[name])
        if path not in dirs:
            dirs.append(path)
    return dirs


def _package_parent() -> str:
    """The directory holding the push_pools package (a source checkout, or site-packages)."""
    return os.path.realpath(Path(__file__).resolve().parent.parent.parent)


def installer_settings(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in sorted(env.items()) if k.startswith(INSTALLER_ENV_PREFIXES)}


def environment_key(packages: list[str], installer_env: Mapping[str, str] | None = None) -> str:
    """The cache key of a normalized package list on this server's interpreter."""
    material = {
        "packages": packages,
        "python": [sys.implementation.name, *map(str, sys.version_info[:3])],
        # The .pth file bakes in these paths; another installation needs another env.
        "executable": os.path.realpath(sys.executable),
        "site": _site_dirs(),
        "push_pools": _package_parent(),
        "installer_env": installer_settings(installer_env or {}),
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    # 32 hex digits (128 bits) is plenty and keeps shebang lines well under Linux's limit.
    return digest[:32]


def installer() -> str:
    """Which installer builds envs: uv when it is on PATH (much faster), else pip."""
    return "uv" if shutil.which("uv") else "pip"


def _python_in(env_dir: Path) -> Path:
    if os.name == "nt":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def _site_packages_of(env_dir: Path) -> Path:
    candidates = sorted(env_dir.glob("lib/python*/site-packages")) or sorted(
        env_dir.glob("Lib/site-packages")
    )
    if len(candidates) != 1:
        raise InstallFailed(
            f"cannot find the site-packages directory of the new environment {env_dir}",
            [],
            None,
        )
    return candidates[0]


def _is_ready(env_dir: Path) -> bool:
    return (env_dir / READY_MARKER).is_file() and _python_in(env_dir).exists()


def ensure_environment(
    envs_dir: Path,
    packages: Iterable[object],
    *,
    log: Callable[[str], None] = lambda message: None,
    installer_env: Mapping[str, str] | None = None,
    confinement: BuildConfinement | None = None,
) -> Environment:
    """The environment for `packages`, built (once, under a lock) if it is not cached yet.

    With `confinement`, the installer runs confined; the cache is still written only here.
    Raises InstallFailed when the installer fails; nothing is cached then.
    """
    wanted = normalize_packages(packages)
    if not wanted:
        return Environment(python=Path(sys.executable))
    env = dict(os.environ)
    env.update(installer_settings(installer_env or {}))
    key = environment_key(wanted, env)
    envs_dir.mkdir(parents=True, exist_ok=True)
    final = envs_dir / key
    if _is_ready(final):
        return _cached(final, key, wanted, log)

    waiting = functools.partial(log, f"waiting for another run that is building environment {key}")
    with _locked(envs_dir / f".{key}.lock", on_wait=waiting):
        # Whoever held the lock before us may have built it.
        if _is_ready(final):
            return _cached(final, key, wanted, log)
        _remove_stale_builds(envs_dir, key, final)
        build = envs_dir / f".{key}.{secrets.token_hex(4)}"
        tool = installer()
        log(
            f"installing {len(wanted)} package(s) with {tool} into a new environment {key}: "
            f"{' '.join(wanted)}"
        )
        started = time.monotonic()
        try:
            _build(build, wanted, tool, env, log, confinement)
            _publish(build, final)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        log(f"environment {key} ready in {time.monotonic() - started:.1f} s")
        return Environment(_python_in(build), build.resolve(), key, created=True)


def _cached(final: Path, key: str, wanted: list[str], log: Callable[[str], None]) -> Environment:
    # The real directory, not the symlink: a run keeps the env it started with even if the
    # key is republished meanwhile, and paths match the shebangs written at install time.
    path = final.resolve()
    log(f"using cached environment {key} for: {' '.join(wanted)}")
    return Environment(_python_in(path), path, key, created=False)


class _locked:
    """An exclusive flock on a lock file, held for the `with` block."""

    def __init__(self, path: Path, on_wait: Callable[[], None]) -> None:
        self._path = path
        self._on_wait = on_wait
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._on_wait()
                # Blocks while another sandbox builds the same env; a SIGTERM (cancel) still
                # interrupts it because the sandbox's handler raises.
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self._fd)
            raise

    def __exit__(self, *exc: object) -> None:
        # Closing releases the lock. The lock file stays: deleting it would let a waiter lock
        # a file that a newcomer no longer sees.
        os.close(self._fd)


def _remove_stale_builds(envs_dir: Path, key: str, final: Path) -> None:
    """Builds of this key left by a killed sandbox (we hold the key's lock, so none is live)."""
    current = final.resolve() if final.is_symlink() else None
    for path in envs_dir.glob(f".{key}.*"):
        if path.is_symlink():
            path.unlink(missing_ok=True)  # a link a killed build never published
        elif path.is_dir() and path.resolve() != current:
            shutil.rmtree(path, ignore_errors=True)


def _build(
    build: Path,
    packages: list[str],
    tool: str,
    env: dict[str, str],
    log: Callable[[str], None],
    confinement: BuildConfinement | None = None,
) -> None:
    python = _python_in(build)
    if confinement is not None:
        confinement.prepare(build)
        env = confinement.environment(env)

    def run(command: list[str], what: str) -> list[str]:
        if confinement is not None:
            command = confinement.command(command, build)
        return _run(command, env, what)

    if tool == "uv":
        uv = shutil.which("uv") or "uv"
        run([uv, "venv", "--python", sys.executable, str(build)], "creating the env")
        last = run(
            [uv, "pip", "install", "--python", str(python), "--", *packages],
            "installing pip_packages",
        )
    elif _has_pip_python_option():
        # The server's pip installs into the new env (`pip --python`), which skips seeding pip
        # into every env: seconds saved per new package set.
        run([sys.executable, "-m", "venv", "--without-pip", str(build)], "creating the env")
        last = run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "install",
                "--no-input",
                "--disable-pip-version-check",
                "--",
                *packages,
            ],
            "installing pip_packages",
        )
    else:
        run([sys.executable, "-m", "venv", str(build)], "creating the env")
        last = run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
                "--",
                *packages,
            ],
            "installing pip_packages",
        )
    if last:
        log(last[-1])
    lines = [
        "# Written by push-pools: the server's push_pools and its dependencies, looked up after",
        "# this environment's own packages (which therefore win).",
    ]
    parent = _package_parent()
    for site_dir in _site_dirs():
        # addsitedir rather than a plain path, so .pth files there (editable installs) work.
        lines.append(f"import site; site.addsitedir({site_dir!r})")
    if parent not in _site_dirs():
        lines.append(parent)
    (_site_packages_of(build) / PTH_NAME).write_text("\n".join(lines) + "\n")
    metadata = {
        "packages": packages,
        "installer": tool,
        "python": sys.version.split()[0],
        "created_at": time.time(),
    }
    (build / READY_MARKER).write_text(json.dumps(metadata, indent=2) + "\n")
    if confinement is not None:
        confinement.release(build)


def _has_pip_python_option() -> bool:
    """Whether the server's interpreter has a pip new enough (22.3+) for `pip --python`."""
    try:
        from importlib.metadata import version

        major, minor = (int(part) for part in version("pip").split(".")[:2])
    except Exception:  # noqa: BLE001 - no pip, or an odd version string: use the slow path
        return False
    return (major, minor) >= (22, 3)


def _run(command: list[str], env: dict[str, str], what: str) -> list[str]:
    """Run an installer step; its last lines, or InstallFailed with them."""
    lines: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            # Its own group, so a cancel can stop the installer and whatever it spawned.
            start_new_session=True,
        )
    except OSError as exc:
        raise InstallFailed(f"{what} failed: cannot run {command[0]}: {exc}", [], None) from exc
    try:
        if process.stdout is None:
            raise RuntimeError(f"{what}: the installer was started without stdout=PIPE")
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
        code = process.wait()
    except BaseException:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()
        raise
    finally:
        if process.stdout is not None:
            process.stdout.close()
    if code != 0:
        raise InstallFailed(f"{what} failed with exit code {code}", list(lines), code)
    return list(lines)


def _publish(build: Path, final: Path) -> None:
    """Point `final` at `build` atomically; readers see the old state or the new, never none."""
    link = final.with_name(f".{final.name}.link-{secrets.token_hex(4)}")
    os.symlink(build.name, link)
    try:
        if final.is_dir() and not final.is_symlink():
            # A real directory from an older layout or a manual copy: replace cannot overwrite
            # a non-empty directory.
            shutil.rmtree(final)
        os.replace(link, final)
    except BaseException:
        link.unlink(missing_ok=True)
        raise
