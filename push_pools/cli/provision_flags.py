"""The provisioning `--flags` of `work-pool` commands, built from what each provisioner declares.

`with_provision_flags` gives a typer command one keyword parameter per declared option
(provisioners/options.py), so adding a cloud adds flags without an edit here; `chosen_values`
then keeps the values for the pool's type and refuses, in one line, a flag given for a type
that does not take it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

__all__ = [
    "add_provision_flags",
    "chosen_values",
    "provision_infra_help",
    "refuse_given",
    "with_provision_flags",
]

F = TypeVar("F", bound=Callable[..., Any])


def _annotation(option: Any, pool_types: list[str]) -> Any:
    kinds = ", ".join(pool_types)
    decls = [option.flag]
    if option.value_type is bool and option.default is True:
        decls = [f"{option.flag}/--no-{option.flag[2:]}"]
    info = typer.Option(
        *decls, help=f"[{kinds}] {option.help}", hidden=option.hidden, metavar=option.metavar
    )
    if option.multiple:
        return Annotated[list[str] | None, info]
    if option.value_type is bool:
        return Annotated[bool, info]
    return Annotated[option.value_type | None, info]


def _merged(teardown: bool) -> list[tuple[Any, list[str]]]:
    import dataclasses

    from provisioners.registry import all_options, specs

    by_type = specs()
    merged = []
    for option, pool_types in all_options():
        if teardown and not option.teardown:
            continue
        if len(pool_types) > 1:
            # One flag, several meanings: say each type's own.
            helps = [(t, by_type[t].option(option.name)) for t in pool_types]
            text = " | ".join(f"{t}: {o.help}" for t, o in helps if o is not None)
            option = dataclasses.replace(option, help=text)
        merged.append((option, pool_types))
    return merged


def provision_infra_help() -> str:
    """--provision-infra's help: what it makes, per pool type."""
    from provisioners.registry import specs

    made = "; ".join(f"{t}: {spec.creates}" for t, spec in sorted(specs().items()))
    return (
        f"Create what the pool needs in your cloud account first ({made}). The flags marked "
        "with pool types are its options."
    )


def with_provision_flags(*, teardown: bool = False) -> Callable[[F], F]:
    """Mark a command to take every provisioner's options (with `teardown`: only those a
    teardown takes) as keyword-only parameters, as `**cloud_options`. They are added when the
    command is built (`add_provision_flags`, called by push_pools.cli.main), not at import:
    finding the provisioners reads every installed package's entry points (~40 ms), which
    `work-pool ls` and the other commands without these flags need not pay."""

    def decorate(func: F) -> F:
        func._provision_flags_teardown = teardown  # type: ignore[attr-defined]
        return func

    return decorate


def add_provision_flags(func: Callable[..., Any]) -> None:
    """Give a command marked by `with_provision_flags` its parameters (once); others are left
    as they are."""
    teardown = getattr(func, "_provision_flags_teardown", None)
    if teardown is None or "__signature__" in func.__dict__:
        return
    signature = inspect.signature(func, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    taken = {p.name for p in kept}
    for option, pool_types in _merged(teardown):
        if option.name in taken:
            raise TypeError(
                f"provisioning option '{option.name}' clashes with a flag of {func.__name__}"
            )
        kept.append(
            inspect.Parameter(
                option.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None if option.multiple else option.default,
                annotation=_annotation(option, pool_types),
            )
        )
    func.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]


def chosen_values(
    context: Any, pool_type: str, values: dict[str, Any], *, teardown: bool = False
) -> dict[str, Any]:
    """The values of `pool_type`'s provisioner options; InvalidInput for a flag given on the
    command line (`context`: the command's typer.Context) that this type's provisioner does
    not take."""
    from provisioners.registry import all_options, spec_for
    from push_pools.errors import InvalidInput

    spec = spec_for(pool_type)
    for option, pool_types in all_options():
        if option.name not in values or spec.option(option.name) is not None:
            continue
        if _given(context, option.name):
            raise InvalidInput(
                f"{option.flag} applies to {', '.join(pool_types)} pools, not '{pool_type}'"
            )
    mine = {}
    for option in spec.options:
        if teardown and not option.teardown:
            continue
        value = values.get(option.name, option.default)
        mine[option.name] = list(value) if option.multiple and value else value
    return mine


def refuse_given(context: Any, values: dict[str, Any], why: str) -> None:
    """InvalidInput when any provisioning flag was given on the command line, e.g. without
    --provision-infra."""
    from provisioners.registry import all_options
    from push_pools.errors import InvalidInput

    for option, _ in all_options():
        if option.name in values and _given(context, option.name):
            raise InvalidInput(f"{option.flag} {why}")


def _given(context: Any, name: str) -> bool:
    # typer bundles its own click: compare the source by name, not by its enum class.
    source = context.get_parameter_source(name)
    return getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT")
