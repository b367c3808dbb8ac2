"""`python -m tests.emulators.docker [--port N]`: serve until interrupted.

Prints `DOCKER_HOST=tcp://127.0.0.1:PORT` once it listens, for `export` or `docker.from_env()`.
"""

from __future__ import annotations

import argparse
import signal
import threading

from tests.emulators.docker.emulator import DockerEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.docker")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with DockerEmulator(port=args.port) as engine:
        print(f"DOCKER_HOST={engine.docker_host}", flush=True)
        try:
            stopping.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
