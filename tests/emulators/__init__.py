"""Local stand-ins for the clouds, for tests that drive the real SDKs over HTTP.

moto_server: moto's server on 127.0.0.1. ecs_runner: the same, plus a thread that makes ECS
tasks really run (as local subprocesses) so executor tests see real exit codes and output.
docker: the Docker Engine API for the docker SDK (builds, a registry, containers that run).
"""
