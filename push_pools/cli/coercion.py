"""Command-line values turned into Python values without pydantic, when that is trivial.

typer 0.29 converts every option value with a pydantic TypeAdapter, and importing pydantic and
building the adapters costs a command ~0.1 s before it does anything. Our options are str, int,
float, bool and list[str]: a value that is plainly one of those is converted here; anything else
(a bad value, a Path, a number out of range) goes to typer's own conversion, so its result and
its error messages stay typer's.

This relies on typer's per-parameter `_runtime_param` slot; with a typer that has none, nothing
is installed and typer converts every value itself.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import typer

# typer._coercion is private: only the minor version this was written against gets the light
# conversion; any other typer (a newer one a fresh install brings) converts every value itself,
# slower but never wrong.
_KNOWN_TYPER = ("0.29.",)
try:
    if not typer.__version__.startswith(_KNOWN_TYPER):
        raise ImportError(typer.__version__)
    from typer._coercion import RuntimeParam, build_runtime_param
except ImportError:  # another typer: its own conversion then does all the work
    RuntimeParam = None  # type: ignore[assignment,misc]

LIGHT_COERCION = RuntimeParam is not None

__all__ = ["LIGHT_COERCION", "install_light_coercion"]

# Only forms whose meaning pydantic's lax mode shares exactly; any other spelling falls back.
_INT = re.compile(r"-?[0-9]{1,18}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")


def _plain(annotation: Any, parameter_info: Any, value: Any) -> tuple[bool, Any]:
    """(True, converted) when `value` is plainly of `annotation`, else (False, None)."""
    if getattr(parameter_info, "parser", None) is not None:
        return False, None
    if annotation is str:
        return (True, value) if isinstance(value, str) else (False, None)
    if annotation is int or annotation is float:
        if isinstance(value, str):
            if not (_INT if annotation is int else _FLOAT).fullmatch(value):
                return False, None
            number = annotation(value)
        elif type(value) is int or (annotation is float and type(value) is float):
            number = annotation(value)
        else:
            return False, None
        if getattr(parameter_info, "clamp", False):
            return False, None
        low, high = parameter_info.min, parameter_info.max
        if (low is not None and number < low) or (high is not None and number > high):
            return False, None  # typer words the error
        return True, number
    if repr(annotation) == "list[str]" and isinstance(value, (list, tuple)):
        if all(isinstance(item, str) for item in value):
            return True, list(value)
    return False, None


if RuntimeParam is not None:

    class _LightRuntimeParam(RuntimeParam):  # type: ignore[misc,valid-type]
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            done, converted = _plain(self.annotation, self.parameter_info, value)
            if done:
                return converted
            full = build_runtime_param(param.type_descriptor)
            param._runtime_param = full  # later values of this parameter go straight to typer
            return full._coerce_value(value, param=param, ctx=ctx)


def install_light_coercion(command: Any, help_option_names: list[str] | None) -> None:
    """Give each parameter of a click command built by typer the light conversion, its help
    option included (click makes that one on demand, from the context's help option names;
    without them, typer converts that option's value itself)."""
    if RuntimeParam is None:
        return
    params = list(getattr(command, "params", ()))
    get_help_option = getattr(command, "get_help_option", None)
    if get_help_option is not None and help_option_names is not None:
        names = (command.context_settings or {}).get("help_option_names", help_option_names)
        help_option = get_help_option(SimpleNamespace(help_option_names=names))
        if help_option is not None:
            params.append(help_option)
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", 0) is not None:
            continue
        if descriptor.file_annotation is not None:
            continue
        param._runtime_param = _LightRuntimeParam(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )
