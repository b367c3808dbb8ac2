"""The `managed` pool type: flow runs in sandboxes on the server's own host.

Modules: template (the default base job template and POOL_TYPE, stdlib only: the CLI loads it),
executor (ManagedExecutor). The sandbox itself, environments and isolation: push_pools.managed.
"""
