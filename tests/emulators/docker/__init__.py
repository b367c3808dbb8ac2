"""An emulator of the Docker Engine API for tests that drive the real docker SDK over HTTP.

    from tests.emulators.docker import DockerEmulator

    with DockerEmulator() as engine:
        monkeypatch.setenv("DOCKER_HOST", engine.docker_host)
        client = docker.from_env()

or, from a shell: `python -m tests.emulators.docker [--port N]` prints `DOCKER_HOST=...`.

Builds interpret the Dockerfile without running RUN steps (builds.py); pushes and pulls go to
one in-memory registry (registry.py); containers run their command as local subprocesses
(runtime.py). emulator.py lists the controls and records; README.md the pitfalls.
"""

from tests.emulators.docker.emulator import DockerEmulator

__all__ = ["DockerEmulator"]
