"""`python -m tests.emulators.gcp [--port N] [--project P]`: serve until Ctrl-C.

Prints the endpoint setting and writes a key file for an owner of the project, so a person can
point push-pools at the emulator.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

from tests.emulators.gcp.emulator import GcpEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.gcp", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free one)")
    parser.add_argument("--project", default="proj-a", help="project to create (default proj-a)")
    parser.add_argument("--key-file", type=Path, help="where to write the owner's key JSON")
    args = parser.parse_args(argv)
    key_file = args.key_file or Path(tempfile.mkdtemp(prefix="gcp-emulator-")) / "owner.json"
    emulator = GcpEmulator(port=args.port).start()
    try:
        emulator.create_key_file(key_file, project=args.project)
        print(f"PUSH_POOLS_GCP_ENDPOINT={emulator.endpoint}")
        print(f"GOOGLE_APPLICATION_CREDENTIALS={key_file}")
        print(f"project {args.project}: owner key written; Ctrl-C to stop", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
