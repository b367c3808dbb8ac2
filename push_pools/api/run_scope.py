"""What a run token may do: the few routes the engine uses for its own run, nothing else.

It may download its own deployment's code bundle, not another's. Not blocks, not pools, not
other runs, not creating runs: a flow's code holds its run's token, so anything reachable here
is reachable by whoever wrote the flow.
"""

from __future__ import annotations

from push_pools.store.run_tokens import RunScope

__all__ = ["BUNDLES_PREFIX", "allows"]

BUNDLES_PREFIX = "/api/bundles/"

# (method, path under /api/flow_runs/<own id>) the engine and its log shipper call.
_OWN_RUN_ROUTES = frozenset(
    {
        ("GET", ""),
        ("GET", "/states"),
        ("GET", "/execution"),
        ("GET", "/logs"),
        ("POST", "/state"),
        ("POST", "/logs"),
    }
)


def allows(scope: RunScope, method: str, path: str) -> bool:
    """Whether a request (its method and decoded path) is within the token's run."""
    if path == "/api/health":
        return method in ("GET", "HEAD")
    if path in ("/api/wheel", "/api/bootstrap"):
        return method == "GET"  # push-pools itself: public code, nothing of anyone's
    if path.startswith(BUNDLES_PREFIX):
        return method in ("GET", "HEAD") and path[len(BUNDLES_PREFIX) :] in scope.bundles
    if scope.deployment_id and path == f"/api/deployments/{scope.deployment_id}":
        return method == "GET"
    prefix = f"/api/flow_runs/{scope.flow_run_id}"
    if not path.startswith(prefix):
        return False
    return (method, path[len(prefix) :]) in _OWN_RUN_ROUTES
