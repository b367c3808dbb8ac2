"""Google Cloud on one 127.0.0.1 port, for tests that drive the real Google clients.

    from tests.emulators.gcp import GcpEmulator

    with GcpEmulator() as emulator:
        key = emulator.create_key_file(tmp_path / "key.json", project="proj-a")

See README.md here for the API surface, the permission model and the test controls.
"""

from tests.emulators.gcp.emulator import GcpEmulator

__all__ = ["GcpEmulator"]
