"""The `process` pool type: each flow run a subprocess of a polling worker.

Modules: template (the default base job template and POOL_TYPE, stdlib only: the CLI loads it),
executor (ProcessExecutor, forking runs from push_pools.executors.forkserver).
"""
