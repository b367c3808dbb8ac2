"""What GCP provisioning tests share: the project and the environment pointing at the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.emulators.gcp import GcpEmulator

PROJECT = "proj-a"


def account_email(pool: str, role: str) -> str:
    """The email of a pool's service account: role "run" (runtime) or "cp" (control plane)."""
    return f"pp-{pool}-{role}@{PROJECT}.iam.gserviceaccount.com"


def gcp_test_env(monkeypatch: pytest.MonkeyPatch, emulator: GcpEmulator, tmp_path: Path) -> Path:
    """Application-default credentials = a key of proj-a's owner; every client at the
    emulator; nothing of the machine's own gcloud set-up or metadata server in reach."""
    key = emulator.create_key_file(tmp_path / "owner-key.json", project=PROJECT)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.setenv("PUSH_POOLS_GCP_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    # A refused port instead of the link-local metadata server: no waiting for its timeout.
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    for name in ("CLOUDSDK_RUN_REGION", "CLOUDSDK_COMPUTE_REGION", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    return key
