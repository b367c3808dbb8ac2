"""The pull_bundle step: at the start of a run, fetch the deployment's code bundle and unpack it.

The bundle is downloaded with the run's own token (PUSH_POOLS_API_URL, PUSH_POOLS_API_KEY in
the run's environment), checked against its sha256, and unpacked into a fresh directory under
the run's working directory (for a managed run, its sandbox's `work/`, which the sandbox user
owns). Its requirements.txt, or else its pyproject.toml's [project] dependencies, are installed
(deploy/dependencies.py), unless `deploy` already moved them into the managed pool's cached
environment (`install_requirements: false`).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from push_pools.deploy.dependencies import REQUIREMENTS_FILE
from push_pools.errors import InvalidInput, RunSetupError

if TYPE_CHECKING:
    from push_pools.client import Client

__all__ = ["REQUIREMENTS_FILE", "pull_bundle", "using_client"]


# The engine's own client while it runs pull steps: setting up another one (its TLS context
# alone) would cost a few tenths of a second at every run's start.
_CLIENT: ContextVar[Client | None] = ContextVar("pull_bundle_client", default=None)


@contextlib.contextmanager
def using_client(client: Client | None) -> Iterator[None]:
    token = _CLIENT.set(client)
    try:
        yield
    finally:
        _CLIENT.reset(token)


def pull_bundle(cwd: Path, options: dict[str, Any]) -> dict[str, Any]:
    from push_pools.client import Client
    from push_pools.deploy.bundle import unpack

    sha256 = str(options["sha256"]).strip().lower()
    shared = _CLIENT.get()
    if shared is not None:
        data = shared.download_bundle(sha256)
    else:
        with Client() as client:
            data = client.download_bundle(sha256)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise InvalidInput(
            f"pull_bundle: the downloaded bundle has sha256 {actual}, not {sha256}; it was "
            "changed or cut short on the way"
        )
    # A fresh directory per run: a reused working directory never mixes two versions' files.
    target = Path(tempfile.mkdtemp(prefix=f"bundle-{sha256[:12]}-", dir=cwd))
    target.chmod(0o755)
    unpack(data, target)
    if options.get("install_requirements", True):
        _install_dependencies(target)
    return {"directory": str(target), "sha256": sha256}


def _install_dependencies(directory: Path) -> None:
    """Install the project's requirements.txt or pyproject.toml dependencies; RunSetupError
    (the run is Crashed, its code never ran) when that fails."""
    from push_pools.deploy import dependencies
    from push_pools.deploy.steps import install_requirements

    with tempfile.TemporaryDirectory(prefix="dependencies-") as scratch:
        found = dependencies.find(directory, Path(scratch))
        if found.requirements is None:
            return
        try:
            install_requirements(
                directory, found.requirements, stream=True, prefer_uv=True, what="pull_bundle"
            )
        except InvalidInput as exc:
            raise RunSetupError(
                f"installing the dependencies of {found.source} failed: {exc.message}"
            ) from None
