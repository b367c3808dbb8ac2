"""What a cloud provisioner declares about itself, so the CLI needs no edit for a new cloud.

A provisioner package ships a `spec.py` holding one `ProvisionerSpec` named `PROVISIONER`
(or a separately installed package names one in the `push_pools.provisioners` entry-point
group); provisioners/registry.py finds them. The CLI builds the `--flags` of `work-pool create
--provision-infra`, `provision-infra` and `deprovision-infra` from `options`, and stores the
credentials the provisioner hands it in a block of `credentials_block_type`.

Stdlib only: the CLI reads these declarations to draw `--help`, before any cloud SDK is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ProvisionOption", "ProvisionerSpec"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_OPTION_TYPES = (str, int, bool)


@dataclass(frozen=True)
class ProvisionOption:
    """One `--flag` of a cloud's provisioning.

    `name` is the key the provisioner receives its value under, and (with hyphens) the flag:
    "log_retention_days" -> `--log-retention-days`; a bool option with a default of True is
    written `--NAME/--no-NAME`. Several clouds may declare the same name (e.g. "region"): the
    CLI shows one flag whose help lists each pool type's meaning, so the declarations must
    agree on type, default and `multiple`.
    """

    name: str
    help: str
    value_type: type = str  # str, int or bool
    default: Any = None
    # Repeatable (`--resource-name a=b --resource-name c=d`): the value is a list of strings.
    multiple: bool = False
    # Also taken when tearing down (`deprovision-infra`): options that say how to reach the
    # cloud (a profile, an endpoint), not what to create; what was created comes from the records.
    teardown: bool = False
    # Left out of --help: testing settings such as an emulator's endpoint.
    hidden: bool = False
    metavar: str | None = None  # how --help names the value, e.g. "KEY=NAME"

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"option name {self.name!r} must be lower_snake_case")
        if self.value_type not in _OPTION_TYPES:
            raise ValueError(f"option {self.name!r}: type must be one of str, int, bool")
        if self.multiple and self.value_type is not str:
            raise ValueError(f"option {self.name!r}: only str options may be repeatable")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def shape(self) -> tuple[type, Any, bool]:
        """What two clouds' declarations of one flag must agree on."""
        return (self.value_type, self.default, self.multiple)


@dataclass(frozen=True)
class ProvisionerSpec:
    """A cloud's provisioner, as the CLI sees it before loading it.

    `provisioner` is "module:Class"; the class is imported only when a pool of one of
    `pool_types` is provisioned, and is called as
    `Class(pool_name, values, records=...)` (see registry.Provisioner).
    """

    cloud: str  # "aws", "gcp": shown to people, and the `cloud` of ProvisioningError
    pool_types: tuple[str, ...]
    options: tuple[ProvisionOption, ...]
    credentials_block_type: str  # e.g. "aws-credentials"
    provisioner: str
    creates: str  # one line for --help: what --provision-infra makes for these pool types

    def option(self, name: str) -> ProvisionOption | None:
        for option in self.options:
            if option.name == name:
                return option
        return None
