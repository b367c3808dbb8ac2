"""Local stand-ins for the clouds, for tests that drive the real SDKs over HTTP.

moto_server: moto's server on 127.0.0.1. ecs_runner: the same, plus a thread that makes ECS
tasks really run (as local subprocesses) so executor tests see real exit codes and output.
gcp: Google Cloud (Cloud Run v2 whose executions run, IAM admin over gRPC, Artifact Registry,
Service Usage, Resource Manager, Logging, Storage) on one port, with real token checks.
azure: Entra ID and Azure Resource Manager over HTTPS (its own certificate), with RBAC, LROs,
faults, and container groups that really run (see azure/README.md).
docker: the Docker Engine API for the docker SDK (builds, a registry, containers that run).
"""
