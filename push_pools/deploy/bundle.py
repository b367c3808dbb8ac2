"""Code bundles: a project directory packed into a deterministic tar.gz named by its sha256.

What goes in: every file under the directory except what `.gitignore` files (at any depth) and
a top-level `.pushpoolsignore` exclude, with git's pattern rules; VCS folders, virtual
environments (any directory holding a pyvenv.cfg) and `__pycache__` are never packed. The same
files give the same bytes (sorted entries, fixed times, owners and modes, a gzip header without
a name or time), so the hash names the content: a redeploy of unchanged code finds its bundle on
the server already and uploads nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from push_pools.errors import InvalidInput

__all__ = [
    "IGNORE_FILE",
    "MAX_BUNDLE_ENV",
    "Bundle",
    "max_bundle_bytes",
    "pack",
    "packed_files",
    "unpack",
]

IGNORE_FILE = ".pushpoolsignore"
MAX_BUNDLE_ENV = "PUSH_POOLS_MAX_BUNDLE_BYTES"
# The server's default request limit (PUSH_POOLS_MAX_REQUEST_BYTES): a larger bundle could not
# be uploaded anyway.
DEFAULT_MAX_BUNDLE_BYTES = 10 * 1024 * 1024
_NEVER_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__"})
# 1980-01-01: the earliest time a zip (and so a wheel) can hold; any fixed value would do.
_FIXED_MTIME = 315532800

Matcher = Callable[[str, bool], bool | None]


@dataclass(frozen=True)
class Bundle:
    sha256: str
    data: bytes
    files: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.data)


def max_bundle_bytes() -> int:
    raw = os.environ.get(MAX_BUNDLE_ENV) or str(DEFAULT_MAX_BUNDLE_BYTES)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidInput(
            f"{MAX_BUNDLE_ENV}={raw!r} is not a positive number of bytes; unset it for the "
            f"default of {DEFAULT_MAX_BUNDLE_BYTES}"
        )
    return value


def pack(directory: Path, max_bytes: int | None = None) -> Bundle:
    """The bundle of `directory`; InvalidInput when it is larger than `max_bytes` compressed."""
    root = directory.resolve()
    if not root.is_dir():
        raise InvalidInput(f"cannot bundle {root}: it is not a directory")
    limit = max_bytes if max_bytes is not None else max_bundle_bytes()
    files = packed_files(root)
    buffer = io.BytesIO()
    # mtime=0 and no file name: the gzip header carries nothing that changes between packs.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for relative in files:
                path = root / relative
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise InvalidInput(
                        f"cannot read {path} to bundle it: {exc.strerror}; leave it out with "
                        f"{IGNORE_FILE}"
                    ) from None
                info = tarfile.TarInfo(relative)
                info.size = len(data)
                info.mtime = _FIXED_MTIME
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
                if buffer.tell() > limit:
                    raise _too_large(root, files, limit)
    data = buffer.getvalue()
    if len(data) > limit:
        raise _too_large(root, files, limit)
    return Bundle(sha256=hashlib.sha256(data).hexdigest(), data=data, files=tuple(files))


def _too_large(root: Path, files: list[str], limit: int) -> InvalidInput:
    largest = sorted(files, key=lambda name: (root / name).stat().st_size, reverse=True)[:3]
    shown = ", ".join(f"{name} ({_mib((root / name).stat().st_size)})" for name in largest)
    return InvalidInput(
        f"the code bundle of {root} is over the limit of {_mib(limit)} compressed; its largest "
        f"files: {shown}. Leave data and build output out with {IGNORE_FILE} (gitignore "
        f"syntax), or raise the limit with {MAX_BUNDLE_ENV} (and the server's "
        "PUSH_POOLS_MAX_REQUEST_BYTES)"
    )


def _mib(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def packed_files(root: Path) -> list[str]:
    """The project's files that go into its bundle, as sorted POSIX paths relative to `root`."""
    found: list[str] = []
    base_rules = _read_patterns(root / ".gitignore") + _read_patterns(root / IGNORE_FILE)
    top = _compile(base_rules)
    for relative in _walk(root, "", [("", top)] if top else []):
        found.append(relative)
    return sorted(found)


def _walk(root: Path, prefix: str, matchers: list[tuple[str, Matcher]]) -> Iterator[str]:
    directory = root / prefix if prefix else root
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise InvalidInput(f"cannot read {directory} to bundle it: {exc.strerror}") from exc
    if prefix:
        nested = _compile(_read_patterns(directory / ".gitignore"))
        if nested is not None:
            matchers = [*matchers, (prefix + "/", nested)]
    for entry in entries:
        relative = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.is_symlink() and entry.is_dir():
            continue  # a link may lead out of the project, or back into it forever
        is_dir = entry.is_dir()
        if is_dir and (entry.name in _NEVER_DIRS or (Path(entry.path) / "pyvenv.cfg").exists()):
            continue
        if _ignored(relative, is_dir, matchers):
            continue
        if is_dir:
            yield from _walk(root, relative, matchers)
            continue
        try:
            mode = os.stat(entry.path).st_mode
        except OSError:
            continue  # a dangling link: nothing to pack
        if stat.S_ISREG(mode):
            yield relative


def _ignored(relative: str, is_dir: bool, matchers: list[tuple[str, Matcher]]) -> bool:
    # Git's rule: the deepest .gitignore that has an opinion about a path decides.
    verdict = False
    for base, matches in matchers:
        if base and not relative.startswith(base):
            continue
        inner = relative[len(base) :]
        decided = matches(inner, is_dir)
        if decided is not None:
            verdict = decided
    return verdict


def _read_patterns(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []


def _compile(lines: list[str]) -> Matcher | None:
    """A matcher answering True (ignored), False (re-included by `!`) or None (no rule)."""
    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

    patterns = [GitIgnoreSpecPattern(line) for line in lines]
    patterns = [p for p in patterns if p.include is not None]
    if not patterns:
        return None

    def matches(relative: str, is_dir: bool) -> bool | None:
        # A trailing slash lets directory-only patterns ("build/") match the directory itself.
        candidate = relative + "/" if is_dir else relative
        verdict: bool | None = None
        for pattern in patterns:
            if pattern.match_file(candidate) is not None:
                verdict = bool(pattern.include)
        return verdict

    return matches


def unpack(data: bytes, target: Path) -> list[str]:
    """Extract a bundle into `target` (created); refuse links and paths leading out of it."""
    target.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                parts = member.name.split("/")
                if not member.isfile() or member.name.startswith("/") or ".." in parts:
                    raise InvalidInput(f"the code bundle holds a disallowed entry {member.name!r}")
                names.append(member.name)
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(f"cannot unpack the code bundle into {target}: {exc}") from exc
    return names
