"""Which pool types can `--provision-infra`, and the one shape the CLI drives them through.

Provisioners are found, not listed here: every package under `provisioners/` that has a
`spec.py` with a `PROVISIONER` (a provisioners.options.ProvisionerSpec) is one, and so is every
spec a separately installed package names in the `push_pools.provisioners` entry-point group.
A new cloud therefore adds its own package and edits nothing here or in the CLI.

Stdlib only until a provisioner is built: `--help` reads the specs.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from provisioners.options import ProvisionerSpec, ProvisionOption
from push_pools.errors import InvalidInput

__all__ = [
    "ENTRY_POINT_GROUP",
    "CredentialsStore",
    "Preflight",
    "Provisioner",
    "all_options",
    "provisioner_for",
    "spec_for",
    "specs",
]

ENTRY_POINT_GROUP = "push_pools.provisioners"
_log = logging.getLogger("push_pools")


@dataclass(frozen=True)
class Preflight:
    """Who is provisioning where, for the plan's headline."""

    account: str  # the AWS account id, the GCP project id, ...
    caller: str
    region: str
    note: str
    scope: str = "account"  # what `account` is called in this cloud: "account", "project"


class CredentialsStore(Protocol):
    """The CLI's hooks into the block store, bound to the cloud's credentials block type."""

    def save(self, name: str, data: dict[str, Any]) -> None:
        """Create or overwrite block `name` with `data` (the block type's own fields)."""
        ...

    def exists(self, name: str) -> bool: ...


class Provisioner(Protocol):
    """Built as `Class(pool_name, values, records=records)`: `values` maps each of the spec's
    option names to what the user gave (or its default); `records` are the pool's provisioning
    records so far (empty for a new pool), which say where an earlier run provisioned: a
    provisioner takes its region, project, endpoint, ... from them when `values` does not say.
    """

    cloud: str

    def preflight(self) -> Preflight:
        """Who and where we are; raises when something is missing. Read-only."""
        ...

    def plan(self, recorder: Any, *, credentials: CredentialsStore) -> Any:
        """The provisioners.plan.Plan for this pool."""
        ...

    def template_defaults(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """Job-variable defaults for the pool's base job template, from the applied records."""
        ...

    def credentials_block_name(self) -> str | None:
        """The block a provisioning run stores credentials in (None: it stores none)."""
        ...


_specs: dict[str, ProvisionerSpec] | None = None


def _discover() -> list[ProvisionerSpec]:
    import provisioners

    found: list[ProvisionerSpec] = []
    for module in pkgutil.iter_modules(provisioners.__path__):
        if not module.ispkg:
            continue
        where = f"provisioners.{module.name}.spec"
        if importlib.util.find_spec(where) is None:
            continue
        found.append(_checked(importlib.import_module(where).PROVISIONER, where))
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = _checked(entry.load(), entry.value)
        except Exception as exc:  # a broken plug-in must not take the other clouds down
            _log.warning(
                "provisioner %r is left out: entry point %r in group %r: %s",
                entry.name,
                entry.value,
                ENTRY_POINT_GROUP,
                exc,
            )
            continue
        found.append(spec)
    return found


def _checked(spec: Any, where: str) -> ProvisionerSpec:
    if not isinstance(spec, ProvisionerSpec):
        raise TypeError(f"{where} must name a provisioners.options.ProvisionerSpec")
    return spec


def _load() -> dict[str, ProvisionerSpec]:
    global _specs
    if _specs is None:
        by_type: dict[str, ProvisionerSpec] = {}
        for spec in _discover():
            for pool_type in spec.pool_types:
                # The same spec twice (an installed copy of a built-in) is one provisioner.
                other = by_type.get(pool_type)
                if other is not None and other != spec:
                    raise InvalidInput(
                        f"two provisioners for pool type '{pool_type}': {other.provisioner} "
                        f"and {spec.provisioner}; uninstall one"
                    )
                by_type[pool_type] = spec
        _specs = by_type
    return _specs


def specs() -> dict[str, ProvisionerSpec]:
    """Pool type -> its provisioner's spec."""
    return dict(_load())


def spec_for(pool_type: str) -> ProvisionerSpec:
    found = _load().get(pool_type)
    if found is None:
        raise InvalidInput(
            f"work pool type '{pool_type}' has no --provision-infra; types that do: "
            f"{', '.join(sorted(_load())) or 'none installed'}"
        )
    return found


def all_options() -> list[tuple[ProvisionOption, list[str]]]:
    """Every declared option once, with the pool types that take it, in declaration order.

    Raises TypeError when two clouds declare one name with different types or defaults: one
    flag cannot mean both.
    """
    merged: dict[str, tuple[ProvisionOption, list[str]]] = {}
    for pool_type, spec in sorted(_load().items()):
        for option in spec.options:
            seen = merged.get(option.name)
            if seen is None:
                merged[option.name] = (option, [pool_type])
                continue
            if seen[0].shape() != option.shape():
                raise TypeError(
                    f"provisioning option '{option.name}' is declared with different types or "
                    f"defaults by pool types {', '.join(seen[1])} and {pool_type}"
                )
            seen[1].append(pool_type)
    return list(merged.values())


def provisioner_for(
    pool_type: str,
    pool_name: str,
    values: Mapping[str, Any],
    *,
    records: Sequence[Any] = (),
) -> Provisioner:
    """The provisioner of `pool_type`, built for `pool_name` (imports its cloud's modules)."""
    spec = spec_for(pool_type)
    module_name, _, class_name = spec.provisioner.partition(":")
    kind = getattr(importlib.import_module(module_name), class_name)
    mine = {o.name: values.get(o.name, o.default) for o in spec.options}
    provisioner: Provisioner = kind(pool_name, mine, records=list(records))
    return provisioner
