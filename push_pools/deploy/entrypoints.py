"""Entrypoints ("path/to/file.py:function"): load the flow one names, or find them in a tree.

Loading executes the user's file, so every failure is turned into an InvalidInput that says what
to change, never a traceback from deep inside importlib.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from push_pools.errors import InvalidInput

if TYPE_CHECKING:
    from push_pools.flows import Flow

# Directories that never hold the user's flows, and whose files can be slow or unsafe to parse.
_SKIPPED_DIRS = frozenset({"site-packages", "node_modules", "__pycache__", "build", "dist"})


def split_entrypoint(entrypoint: str) -> tuple[str, str]:
    """("path/file.py", "function") from "path/file.py:function"."""
    # The last colon separates, so a Windows drive letter ("C:\\...") stays in the path.
    path, sep, function_name = entrypoint.strip().rpartition(":")
    if not sep or not path or not function_name:
        raise InvalidInput(
            f"entrypoint {entrypoint!r} must look like 'path/to/file.py:function_name' "
            "(the file, a colon, then the name of the @flow function)"
        )
    if not function_name.isidentifier():
        raise InvalidInput(
            f"entrypoint {entrypoint!r}: {function_name!r} is not a Python function name"
        )
    return path, function_name


def is_flow(obj: object) -> bool:
    # The Flow class carries the marker too; `from push_pools.flows import Flow` is no flow.
    return getattr(obj, "__push_pools_flow__", False) is True and not isinstance(obj, type)


def load_flow(entrypoint: str, base_dir: Path | None = None) -> Flow:
    """Import the file an entrypoint names and return its flow.

    A relative path is taken from `base_dir` (the project directory), or the working directory.
    """
    path_text, function_name = split_entrypoint(entrypoint)
    base = (base_dir or Path.cwd()).resolve()
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = base / path
    path = path.resolve()
    if not path.is_file():
        hint = "" if path.suffix == ".py" else " (the part before ':' must be a .py file)"
        raise InvalidInput(f"entrypoint {entrypoint!r}: file {path} does not exist{hint}")

    module = import_file(path, extra_paths=[base])
    obj = getattr(module, function_name, None)
    if obj is None:
        found = flows_in_module(module)
        listing = (
            "flows in it: " + ", ".join(f"{path.name}:{name}" for name in found)
            if found
            else "it defines no @flow functions"
        )
        raise InvalidInput(f"entrypoint {entrypoint!r}: no {function_name!r} in {path}; {listing}")
    if not is_flow(obj):
        kind = "a function" if callable(obj) else f"a {type(obj).__name__}"
        raise InvalidInput(
            f"{function_name!r} in {path.name} is {kind}, not a flow: "
            "decorate it with @flow from push_pools"
        )
    return obj  # type: ignore[no-any-return]


def flows_in_module(module: ModuleType) -> list[str]:
    """Names of the module's attributes that are flows."""
    return sorted(name for name, value in vars(module).items() if is_flow(value))


def import_file(path: Path, extra_paths: list[Path] | None = None) -> ModuleType:
    """Execute a Python file as a fresh module; InvalidInput if it raises."""
    # The file's own directory goes first so `import helpers` next to the flow file works, as
    # it does under `python file.py`; the project root lets `from mypackage import x` work too.
    for directory in reversed([path.parent, *(extra_paths or [])]):
        entry = str(directory)
        if entry not in sys.path:
            sys.path.insert(0, entry)

    # A name unique per file: two flow files both called flows.py must not replace each other.
    digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:10]
    module_name = f"push_pools_user_{_identifier(path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    # Registered before executing it, as a normal import does: dataclasses, pickling and
    # typing.get_type_hints look the module up in sys.modules by name.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        sys.modules.pop(module_name, None)
        raise
    except BaseException as exc:  # SystemExit too: a script's sys.exit() must not end the CLI
        sys.modules.pop(module_name, None)
        raise InvalidInput(
            f"importing {path} failed: {type(exc).__name__}: {exc}{_where(exc, path)}"
        ) from exc
    return module


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in text)


def _where(exc: BaseException, path: Path) -> str:
    """ " (line N of file.py)": where in the user's code it went wrong, without a traceback."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return ""  # its message already carries the file and line
    frames = traceback.extract_tb(exc.__traceback__)
    # The innermost frame in a file of the user's project, not in the standard library.
    for frame in reversed(frames):
        if path.parent in Path(frame.filename).parents:
            return f" (line {frame.lineno} of {Path(frame.filename).name})"
    return ""


# --- discovery without importing ---------------------------------------------------------------


def find_flows(directory: Path) -> list[str]:
    """Entrypoints ("rel/path.py:fn") of the @flow functions under `directory`, sorted.

    Reads the files with `ast` instead of importing them, so a listing never runs user code.
    """
    root = directory.resolve()
    found: list[str] = []
    for current, dirnames, filenames in os.walk(root):
        # Pruned in place so os.walk does not descend into virtualenvs or hidden directories.
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and d not in _SKIPPED_DIRS
            and not (Path(current) / d / "pyvenv.cfg").exists()
        )
        for filename in sorted(filenames):
            if not filename.endswith(".py"):
                continue
            path = Path(current) / filename
            relative = path.relative_to(root).as_posix()
            found.extend(f"{relative}:{name}" for name in flow_functions_in_source(path))
    return found


def flow_functions_in_source(path: Path) -> list[str]:
    """Names of the top-level functions in a file that are decorated with push-pools' @flow."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return []  # a file that does not parse cannot be deployed either; the listing skips it
    flow_names, module_aliases = _flow_imports(tree)
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
            _is_flow_decorator(d, flow_names, module_aliases) for d in node.decorator_list
        ):
            names.append(node.name)
    return names


def _flow_imports(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to push-pools' `flow`, and names bound to modules that export it."""
    # Only names imported from push_pools count: a file's own or another tool's `flow` is not
    # something `load_flow` could deploy.
    flow_names: set[str] = set()
    module_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            ours = node.module.split(".")[0] == "push_pools"
            for alias in node.names:
                bound = alias.asname or alias.name
                if ours and alias.name == "flow":
                    flow_names.add(bound)
                elif ours and alias.name == "flows":
                    module_aliases.add(bound)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "push_pools":
                    module_aliases.add(alias.asname or alias.name)
    return flow_names, module_aliases


def _is_flow_decorator(node: ast.expr, flow_names: set[str], module_aliases: set[str]) -> bool:
    if isinstance(node, ast.Call):  # @flow(name=...) as well as bare @flow
        node = node.func
    if isinstance(node, ast.Name):
        return node.id in flow_names
    if isinstance(node, ast.Attribute) and node.attr == "flow":
        return _dotted(node.value) in module_aliases
    return False


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""
