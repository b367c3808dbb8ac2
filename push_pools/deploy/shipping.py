"""Deploying with a code bundle: pack the project, upload it unless the server has it, and make
the deployment's runs start with a pull_bundle step instead of a path on the deploying machine.

Push and managed pools get a bundle by default (their runs happen where the deploying machine's
directories are not); other pools when asked (`--bundle`, `bundle=True`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from push_pools.deploy.bundle import IGNORE_FILE, Bundle, pack
from push_pools.deploy.entrypoints import split_entrypoint
from push_pools.deploy.pull_bundle import REQUIREMENTS_FILE
from push_pools.deploy.steps import PREFIX
from push_pools.deploy.stock_image import stock_job_variables
from push_pools.errors import InvalidInput

if TYPE_CHECKING:
    from push_pools.client import Client

__all__ = ["Shipped", "bundle_body", "pool_wants_bundle", "ship"]


@dataclass(frozen=True)
class Shipped:
    sha256: str
    size: int
    files: int
    uploaded: int  # bytes sent: 0 when the server had this bundle already

    def describe(self) -> str:
        sent = (
            f"uploaded {self.uploaded:,} bytes" if self.uploaded else "unchanged, nothing uploaded"
        )
        return f"code bundle {self.sha256[:12]}: {self.files} files, {self.size:,} bytes ({sent})"


def pool_wants_bundle(pool_type: str) -> bool:
    from push_pools import pool_types

    try:
        kind = pool_types.get(pool_type)
    except InvalidInput:
        return False
    # Runs that cannot see this machine's directories: the cloud's, the server's host, and a
    # Docker engine's containers.
    return kind.is_push or pool_type in ("managed", "docker")


def ship(
    client: Client, directory: Path, entrypoint: str, work_pool_name: str | None = None
) -> tuple[Bundle, Shipped]:
    """Pack `directory` and upload it unless the server has it (into the bucket the pool
    names, if it names one); InvalidInput when the entrypoint's file would not be in the
    bundle, the bundle is too large, or the server cannot store it."""
    bundle = pack(directory)
    _check_entrypoint(directory, entrypoint, bundle)
    uploaded = 0
    if not client.has_bundle(bundle.sha256, work_pool_name):
        try:
            client.upload_bundle(bundle.sha256, bundle.data, work_pool_name)
        except InvalidInput as exc:
            raise InvalidInput(
                f"uploading the code bundle of {directory} ({bundle.size:,} bytes) failed: "
                f"{exc.message}"
            ) from None
        uploaded = bundle.size
    return bundle, Shipped(bundle.sha256, bundle.size, len(bundle.files), uploaded)


def _check_entrypoint(directory: Path, entrypoint: str, bundle: Bundle) -> None:
    path_text, _ = split_entrypoint(entrypoint)
    path = Path(path_text)
    root = directory.resolve()
    absolute = (path if path.is_absolute() else root / path).resolve()
    try:
        relative = absolute.relative_to(root).as_posix()
    except ValueError:
        raise InvalidInput(
            f"entrypoint {entrypoint!r} is outside the project directory {root}, so it cannot "
            "be in its code bundle; deploy from the directory that holds it"
        ) from None
    if relative in bundle.files:
        return
    if not absolute.is_file():
        raise InvalidInput(
            f"entrypoint {entrypoint!r}: {relative} does not exist in the project directory "
            f"{root}; the code bundle would not hold the flow"
        )
    raise InvalidInput(
        f"entrypoint {entrypoint!r}: {relative} is left out of the code bundle by .gitignore "
        f"or {IGNORE_FILE}; re-include it there (e.g. '!{relative}')"
    )


def bundle_body(
    body: dict[str, Any],
    directory: Path,
    client: Client,
    *,
    bundle: bool | None = None,
    pool_type: str | None = None,
) -> tuple[dict[str, Any], Shipped | None]:
    """The deployment body with its code in a bundle (when `bundle`, or by default for push and
    managed pools), and what was shipped; the body unchanged when no bundle is wanted."""
    if bundle is False:
        return body, None
    pool: dict[str, Any] | None = None
    if body.get("work_pool_name") and (pool_type is None or _runs_containers(pool_type)):
        # The pool's template says whether the runs need the stock image (stock_image.py).
        pool = client.get_work_pool(body["work_pool_name"])
        pool_type = str(pool["type"])
    if bundle is None:
        if pool_type is None or not pool_wants_bundle(pool_type):
            return body, None
    packed, shipped = ship(client, directory, body["entrypoint"], body.get("work_pool_name"))
    options: dict[str, Any] = {"sha256": packed.sha256}
    job_variables = dict(body.get("job_variables") or {})
    if pool_type == "managed":
        packages = _managed_packages(directory, packed.files)
        if packages is not None:
            # The managed pool's environment cache then installs them once per distinct set,
            # instead of every run installing them again.
            existing = job_variables.get("pip_packages") or []
            job_variables["pip_packages"] = [*existing, *packages]
            options["install_requirements"] = False
    if pool is not None:
        job_variables.update(stock_job_variables(pool, job_variables))
    new_body = {
        **body,
        "pull_steps": [{PREFIX + "pull_bundle": options}],
        "path": None,
        "job_variables": job_variables,
    }
    return new_body, shipped


def _runs_containers(pool_type: str) -> bool:
    from push_pools import pool_types

    try:
        return pool_types.get(pool_type).is_push or pool_type == "docker"
    except InvalidInput:
        return False


def _managed_packages(directory: Path, files: tuple[str, ...]) -> list[str] | None:
    """The project's dependencies as plain requirement strings for a managed pool's cached
    environment, or None when the run's own pull step must install them (none, or more than
    plain lines, or a pyproject.toml the run will report as unreadable)."""
    from push_pools.deploy.dependencies import PYPROJECT_FILE, pyproject_dependencies
    from push_pools.errors import RunSetupError

    if REQUIREMENTS_FILE in files:
        return _plain_requirements(directory / REQUIREMENTS_FILE)
    if PYPROJECT_FILE in files:
        try:
            return pyproject_dependencies(directory / PYPROJECT_FILE) or None
        except RunSetupError:
            return None
    return None


def _plain_requirements(path: Path) -> list[str] | None:
    """The requirement lines of a requirements file, or None when it has more than that
    (options, includes, editable installs), which only the installer itself understands."""
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-") or line.endswith("\\"):
            return None
        lines.append(line)
    return lines
