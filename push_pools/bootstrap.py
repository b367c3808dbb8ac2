"""Start a flow run in a stock Python image that has no push-pools: standard library only.

    python -m push_pools.bootstrap        where the package is importable, or
    python -c "<the text of this file>"   where it is not: it imports nothing of push-pools

With PUSH_POOLS_API_URL and PUSH_POOLS_API_KEY (the run's own token, which the dispatcher puts
in the run's environment; nothing secret is on the command line), it downloads the server's
push-pools wheel (`GET /api/wheel`), installs it with its dependencies into this interpreter,
or into a virtual environment at PUSH_POOLS_BOOTSTRAP_VENV when that is set (nothing is installed
when that interpreter has the wheel's version of push-pools already), and replaces itself
with `python -m push_pools.engine`. The engine's pull_bundle step then downloads the
deployment's code bundle with the same token, unpacks it and installs its requirements.txt.
uv is used when it is on PATH, else pip. Installing takes time at every start: an image with
the dependencies built in (issue 13, part 2) is the answer when start time matters.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

API_URL_ENV = "PUSH_POOLS_API_URL"
API_KEY_ENV = "PUSH_POOLS_API_KEY"
VENV_ENV = "PUSH_POOLS_BOOTSTRAP_VENV"
# Extra installer arguments, e.g. "--no-deps" where the dependencies are already there.
INSTALL_ARGS_ENV = "PUSH_POOLS_BOOTSTRAP_INSTALL_ARGS"
TIMEOUT_SECONDS = 120


class BootstrapError(Exception):
    pass


def download_wheel(api_url: str, token: str, directory: Path) -> Path:
    request = urllib.request.Request(
        api_url.rstrip("/") + "/wheel", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # nosec B310
            name = response.headers.get("X-Wheel-Filename") or "push_pools-0-py3-none-any.whl"
            data = response.read()
    except urllib.error.HTTPError as exc:
        raise BootstrapError(f"the server answered {exc.code} for its wheel: {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise BootstrapError(f"cannot reach the push-pools API at {api_url}: {exc}") from exc
    # The name comes from the server: keep only its last path part.
    path = directory / Path(name).name
    path.write_bytes(data)
    return path


def python_for_run() -> str:
    """This interpreter, or the virtual environment's, created when it does not exist yet."""
    venv = os.environ.get(VENV_ENV)
    if not venv:
        return sys.executable
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", venv], "creating the virtual environment")
    return str(python)


def wheel_version(wheel: Path) -> str:
    # A wheel's file name is {distribution}-{version}-{tags}.whl.
    parts = wheel.name.split("-")
    return parts[1] if len(parts) >= 3 else ""


def installed_version(python: str) -> str | None:
    """The push-pools version `python` has, or None when it has none it can import (metadata
    alone can be found where the package itself cannot be imported)."""
    probe = "import push_pools.engine, importlib.metadata as m; print(m.version('push-pools'))"
    result = subprocess.run(
        [python, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else None


def install(python: str, wheel: Path) -> None:
    extra = os.environ.get(INSTALL_ARGS_ENV, "").split()
    if shutil.which("uv"):
        argv = ["uv", "pip", "install", "--python", python, *extra, str(wheel)]
    else:
        argv = [python, "-m", "pip", "install", "--disable-pip-version-check", *extra, str(wheel)]
    _run(argv, f"installing {wheel.name}")


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-20:])
        raise BootstrapError(f"{what} failed (exit code {result.returncode}):\n{tail}")


def main() -> int:
    api_url = os.environ.get(API_URL_ENV)
    token = os.environ.get(API_KEY_ENV)
    if not api_url or not token:
        print(
            f"push-pools bootstrap: {API_URL_ENV} and {API_KEY_ENV} must be set (the run's "
            "dispatcher sets them)",
            file=sys.stderr,
        )
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="push-pools-bootstrap-") as scratch:
            wheel = download_wheel(api_url, token, Path(scratch))
            python = python_for_run()
            # An image built with push-pools in it need not pay for installing it again.
            if installed_version(python) != wheel_version(wheel):
                install(python, wheel)
    except BootstrapError as exc:
        print(f"push-pools bootstrap: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    # The engine replaces this process so the infrastructure sees its exit code; `python` is
    # the interpreter this script chose, never a name from outside.
    os.execv(python, [python, "-m", "push_pools.engine"])  # nosec B606
    return 0  # not reached: execv replaced this process


if __name__ == "__main__":
    sys.exit(main())
