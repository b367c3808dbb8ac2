"""The default image and command of a bundle deploy to a push or docker pool: a stock Python
image and a short command that downloads the bootstrap (push_pools/bootstrap.py) from the server
and runs it.

`deploy` records them as the deployment's job variables, so `deployment inspect` shows what the
runs will start with. They apply only when neither the pool (its template's image default
differs from the type's built-in one) nor the deployment names an image: an image of the user's
own is then used as it is. Nothing secret is in the command: the run's token is in its env.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from push_pools import pool_types
from push_pools.errors import InvalidInput

__all__ = ["BOOTSTRAP_LOADER", "bootstrap_command", "stock_image", "stock_job_variables"]

# Standard library only, as short as it can be while still saying plainly when the server
# cannot be reached (instead of a traceback in the run's log).
BOOTSTRAP_LOADER = (
    "import os,sys,urllib.request as u\n"
    "try:\n"
    " r=u.Request(os.environ['PUSH_POOLS_API_URL'].rstrip('/')+'/bootstrap',"
    "headers={'Authorization':'Bearer '+os.environ.get('PUSH_POOLS_API_KEY','')})\n"
    " s=u.urlopen(r,timeout=120).read()\n"
    "except Exception as e:\n"
    " sys.exit('push-pools bootstrap: cannot download it from the server: %s'%e)\n"
    "exec(compile(s,'push_pools_bootstrap.py','exec'),{'__name__':'__main__'})\n"
)


def stock_image(version: tuple[int, int] | None = None) -> str:
    """The official slim Python image of the deploying interpreter's minor version: the code
    was written (and its requirements resolved) for that version."""
    major, minor = version or sys.version_info[:2]
    return f"python:{major}.{minor}-slim"


def bootstrap_command() -> str:
    return shlex.join(["python", "-c", BOOTSTRAP_LOADER])


def stock_job_variables(pool: dict[str, Any], job_variables: dict[str, Any]) -> dict[str, Any]:
    """The job variables to add to a bundled deployment on `pool`: image and command of the
    stock image, or nothing when the pool is not a push pool or an image is already named."""
    try:
        kind = pool_types.get(str(pool.get("type")))
    except InvalidInput:
        return {}
    if not (kind.is_push or kind.name == "docker") or job_variables.get("image"):
        return {}
    template = kind.default_template()
    builtin = _defaults(template)
    own = _defaults(pool.get("base_job_template") or {})
    if "image" not in builtin or "command" not in _properties(template):
        return {}  # a type whose runs are not containers
    if own.get("image", builtin["image"]) != builtin["image"]:
        return {}  # the pool's own image
    added: dict[str, Any] = {"image": stock_image()}
    # A command of the pool's or the deployment's own is theirs to keep (a wrapper, say).
    # (The docker type's command has no default: empty means the engine's own.)
    pool_command = own.get("command", builtin.get("command"))
    if not job_variables.get("command") and pool_command == builtin.get("command"):
        added["command"] = bootstrap_command()
    return added


def _properties(template: dict[str, Any]) -> dict[str, Any]:
    variables = template.get("variables") if isinstance(template, dict) else None
    properties = variables.get("properties") if isinstance(variables, dict) else None
    return properties if isinstance(properties, dict) else {}


def _defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {
        name: spec["default"]
        for name, spec in _properties(template).items()
        if isinstance(spec, dict) and "default" in spec
    }
