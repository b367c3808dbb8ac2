"""push-pools: run flows on your own infrastructure.

`from push_pools import flow` is the user-facing entry; it is loaded lazily so that importing the
package (as the CLI does) costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["DeploymentImage", "Flow", "flow", "__version__"]

if TYPE_CHECKING:
    from push_pools.deploy.images import DeploymentImage
    from push_pools.flows import Flow, flow


def __getattr__(name: str) -> Any:
    if name in ("flow", "Flow"):
        from push_pools import flows

        return getattr(flows, name)
    if name == "DeploymentImage":
        from push_pools.deploy.images import DeploymentImage

        return DeploymentImage
    raise AttributeError(f"module 'push_pools' has no attribute {name!r}")
