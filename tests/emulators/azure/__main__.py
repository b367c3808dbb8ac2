"""`python -m tests.emulators.azure [--port N]`: the emulator until Ctrl-C.

Prints the address, the certificate, and the lines to export so that push-pools (or the az
SDKs) talk to it as the emulator's Owner service principal.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import threading

from tests.emulators.azure.emulator import AzureEmulator


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.azure")
    parser.add_argument("--port", type=int, default=0, help="HTTPS port (default: any free)")
    parser.add_argument(
        "--identity-port", type=int, default=0, help="managed-identity HTTP port (default: any)"
    )
    args = parser.parse_args()
    stop = threading.Event()
    # Handled explicitly: a background job's shell may have set SIGINT to be ignored.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with AzureEmulator(port=args.port, identity_port=args.identity_port) as emulator:
        print(f"Azure emulator on {emulator.endpoint}", flush=True)
        print(f"certificate: {emulator.ca_bundle}")
        print(f"managed identity endpoint: {emulator.identity_endpoint}")
        print("# export these:")
        for name, value in emulator.env().items():
            print(f"export {name}={shlex.quote(value)}")
        print("# Ctrl-C to stop", flush=True)
        stop.wait()
        print("stopping", flush=True)


if __name__ == "__main__":
    main()
