"""Image filesystems on disk: each image owns a directory tree holding what its COPY/ADD steps
put there, under the emulator's workspace.

COPY follows the builder's rules: sources are relative to the build context (or to another
stage's tree for `--from`), may use wildcards, may not escape their root; a directory source
copies its contents; several sources need a destination directory ending in `/`; a relative
destination is relative to WORKDIR. ADD also unpacks a local tar archive.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CopiedFile",
    "CopyError",
    "Workspace",
    "clone_tree",
    "copy_into",
    "dockerignored",
    "extract_tar",
    "inside",
    "read_tree",
]


class CopyError(Exception):
    """A COPY/ADD that the builder refuses; the message is the builder's."""


@dataclass(frozen=True)
class CopiedFile:
    path: str  # absolute, inside the image
    sha256: str
    size: int


class Workspace:
    """Fresh directories under one root that the emulator removes when it stops."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def new_dir(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))


def inside(root: Path, path: str) -> Path:
    """`path` (absolute or relative to `/`) inside `root`; `..` stops at the root, as in an
    image."""
    clean = posixpath.normpath("/" + path).lstrip("/")
    return root / clean if clean and clean != "." else root


def clone_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under `root`, keyed by its absolute path inside the image."""
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files["/" + path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def extract_tar(data: bytes, target: Path) -> None:
    """Unpack a (possibly compressed) tar; tarfile.TarError when it is not one."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        archive.extractall(target, filter="data")


def copy_into(
    source_root: Path,
    sources: list[str],
    dest: str,
    *,
    workdir: str,
    rootfs: Path,
    chmod: int | None = None,
    unpack_archives: bool = False,
) -> list[CopiedFile]:
    matches: list[Path] = []
    for source in sources:
        found = _match(source_root, source)
        if not found:
            raise CopyError(
                "file not found in build context or excluded by .dockerignore: "
                f"stat {source.lstrip('/')}: file does not exist"
            )
        matches.extend(found)
    target_path = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    target = inside(rootfs, target_path)
    to_directory = dest.endswith("/") or dest in (".", "./") or target.is_dir()
    if len(matches) > 1 and not to_directory:
        raise CopyError(
            "When using COPY with more than one source file, the destination must be a "
            "directory and end with a /"
        )
    copied: list[CopiedFile] = []
    for match in matches:
        if match.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted(match.rglob("*")):
                copied += _copy_one(path, target / path.relative_to(match), rootfs, chmod)
        elif unpack_archives and _is_archive(match):
            target.mkdir(parents=True, exist_ok=True)
            before = set(read_tree(target))
            extract_tar(match.read_bytes(), target)
            copied += [
                CopiedFile(
                    path=_image_path(rootfs, target / name.lstrip("/")),
                    sha256=hashlib.sha256(content).hexdigest(),
                    size=len(content),
                )
                for name, content in sorted(read_tree(target).items())
                if name not in before
            ]
        else:
            file_target = target / match.name if to_directory else target
            copied += _copy_one(match, file_target, rootfs, chmod)
    return copied


def _match(root: Path, pattern: str) -> list[Path]:
    parts = [part for part in posixpath.normpath("/" + pattern).split("/") if part]
    if not any(char in pattern for char in "*?["):
        path = root.joinpath(*parts) if parts else root
        return [path] if path.exists() or path.is_symlink() else []
    candidates = [root]
    for part in parts:
        candidates = [
            child
            for parent in candidates
            if parent.is_dir()
            for child in sorted(parent.iterdir())
            if fnmatch.fnmatchcase(child.name, part)
        ]
    return candidates


def _copy_one(source: Path, target: Path, rootfs: Path, chmod: int | None) -> list[CopiedFile]:
    if source.is_dir() and not source.is_symlink():
        target.mkdir(parents=True, exist_ok=True)
        return []
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
        return []
    shutil.copy2(source, target)
    if chmod is not None:
        target.chmod(chmod)
    content = target.read_bytes()
    return [
        CopiedFile(
            path=_image_path(rootfs, target),
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
        )
    ]


def _image_path(rootfs: Path, path: Path) -> str:
    return "/" + path.relative_to(rootfs).as_posix()


def _is_archive(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def dockerignored(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore `patterns` exclude `path` (relative to the context): the last
    matching pattern decides, `!` re-includes, a pattern matching a parent directory covers
    what is under it, `*` and `?` stay within one path segment and `**` spans several."""
    excluded = False
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for line in patterns:
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = posixpath.normpath(pattern.removeprefix("!").strip()).lstrip("/")
        regex = re.compile(_pattern_regex(pattern))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def _pattern_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)
