"""Local stand-ins for the clouds, for tests that drive the real SDKs over HTTP.

moto_server: moto's server on 127.0.0.1. ecs_runner: the same, plus a thread that makes ECS
tasks really run (as local subprocesses) so executor tests see real exit codes and output.
azure: Entra ID and Azure Resource Manager over HTTPS (its own certificate), with RBAC, LROs,
faults, and container groups that really run (see azure/README.md).
"""
