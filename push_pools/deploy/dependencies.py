"""A bundled project's dependencies: its requirements.txt, else its pyproject.toml's
[project] dependencies, as one requirements file for the installer.

pyproject.toml is read with tomllib: push-pools needs Python 3.11+, which has it, so no older
interpreter gets this far (its installer refuses the wheel). A pyproject.toml that is not
valid TOML stops the run: installing nothing would only fail later, at an import, with a less
useful message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from push_pools.errors import RunSetupError

__all__ = ["PYPROJECT_FILE", "REQUIREMENTS_FILE", "Dependencies", "find", "pyproject_dependencies"]

REQUIREMENTS_FILE = "requirements.txt"
PYPROJECT_FILE = "pyproject.toml"


@dataclass(frozen=True)
class Dependencies:
    source: str  # the file they come from, for messages
    requirements: Path | None  # a requirements file to install; None: nothing to install


def find(directory: Path, scratch: Path) -> Dependencies:
    """The project's dependencies; a requirements file made from pyproject.toml goes to
    `scratch`. RunSetupError when pyproject.toml cannot be read."""
    requirements = directory / REQUIREMENTS_FILE
    if requirements.is_file():
        return Dependencies(REQUIREMENTS_FILE, requirements)
    pyproject = directory / PYPROJECT_FILE
    if not pyproject.is_file():
        return Dependencies("", None)
    packages = pyproject_dependencies(pyproject)
    if not packages:
        return Dependencies(PYPROJECT_FILE, None)
    made = scratch / "pyproject-requirements.txt"
    made.write_text("".join(f"{package}\n" for package in packages), encoding="utf-8")
    return Dependencies(PYPROJECT_FILE, made)


def pyproject_dependencies(path: Path) -> list[str]:
    """The [project] dependencies of a pyproject.toml; RunSetupError when it cannot be read."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RunSetupError(
            f"{PYPROJECT_FILE} of the code bundle is not valid TOML ({exc}); fix it and deploy "
            "again"
        ) from None
    project = data.get("project")
    if not isinstance(project, dict):
        return []
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise RunSetupError(
            f"{PYPROJECT_FILE}: [project] dependencies must be a list of strings, got "
            f"{dependencies!r}"
        )
    return dependencies
