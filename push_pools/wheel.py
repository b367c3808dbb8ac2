"""The wheel of this very push-pools, made from the running package's own files.

push-pools is on no package index, so a stock Python image gets it from the server it talks to
(`GET /api/wheel`): the server zips the package it runs from into a valid wheel (metadata from
the installed distribution, so pip installs the same dependencies), once per process, and keeps
a copy under PUSH_POOLS_HOME/wheels.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Wheel", "server_wheel"]

DIST_NAME = "push_pools"
# The earliest time a zip entry can carry: the same files give the same wheel bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_WHEEL_FILE = (
    "Wheel-Version: 1.0\nGenerator: push-pools\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
)


@dataclass(frozen=True)
class Wheel:
    filename: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@functools.cache
def server_wheel() -> Wheel:
    """This installation's wheel, built on first use and kept for the life of the process."""
    from push_pools import settings

    wheel = build_wheel()
    directory = settings.home_dir() / "wheels"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / wheel.filename).write_bytes(wheel.data)
    return wheel


def build_wheel() -> Wheel:
    import push_pools

    package_dir = Path(push_pools.__file__).resolve().parent
    version, metadata, entry_points = _distribution_files()
    dist_info = f"{DIST_NAME}-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted(package_dir.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.append((f"{DIST_NAME}/{path.relative_to(package_dir).as_posix()}", path.read_bytes()))
    files.append((f"{dist_info}/METADATA", metadata.encode()))
    files.append((f"{dist_info}/WHEEL", _WHEEL_FILE.encode()))
    if entry_points:
        files.append((f"{dist_info}/entry_points.txt", entry_points.encode()))
    record_lines = [f"{name},{_record_hash(data)},{len(data)}" for name, data in files]
    record_lines.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record_lines) + "\n").encode()))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return Wheel(filename=f"{DIST_NAME}-{version}-py3-none-any.whl", data=buffer.getvalue())


def _distribution_files() -> tuple[str, str, str]:
    """(version, METADATA, entry_points.txt) of the installed distribution, or a minimal
    stand-in when the package runs from a plain source tree."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("push-pools")
    except importlib.metadata.PackageNotFoundError:
        version = "0.0.0"
        return version, f"Metadata-Version: 2.1\nName: push-pools\nVersion: {version}\n", ""
    # An editable install from a checkout leaves `push_pools.egg-info` (PKG-INFO, same format)
    # beside the code, and that is what importlib finds first when the checkout is on sys.path.
    metadata = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    return dist.version, metadata, dist.read_text("entry_points.txt") or ""


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"
