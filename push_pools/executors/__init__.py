"""One executor per infrastructure; `load_executor` finds a pool type's executor lazily."""

from __future__ import annotations

import importlib
from typing import Any

from push_pools import pool_types


def load_executor(pool_type: str, **options: Any) -> Any:
    """An instance of the executor the pool type registry names for `pool_type`."""
    module_name, _, class_name = pool_types.get(pool_type).executor.partition(":")
    return getattr(importlib.import_module(module_name), class_name)(**options)
