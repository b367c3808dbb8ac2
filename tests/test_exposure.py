"""The server is safe to expose: no keyless non-loopback bind, only its own host names, no
cross-site writes, private files, and a lost encryption key is never silently replaced."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from push_pools.embedded import free_port
from push_pools.errors import InvalidInput
from tests.dispatch_helpers import push_pools_command


def _server_start(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*push_pools_command(), "server", "start", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSH_POOLS_")}
    return {**env, "PUSH_POOLS_HOME": str(home), **extra}


def test_a_non_loopback_bind_without_an_api_key_is_refused(home: Path) -> None:
    port = free_port()
    process = _server_start(_env(home), "--host", "0.0.0.0", "--port", str(port))
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "refusing to listen on 0.0.0.0 without an API key" in err
    assert "--insecure-no-api-key" in err and "PUSH_POOLS_API_KEY" in err
    assert "Traceback" not in err and "listening" not in out


def test_the_insecure_opt_out_starts_with_a_warning(home: Path) -> None:
    port = free_port()
    process = _server_start(
        _env(home), "--host", "0.0.0.0", "--port", str(port), "--insecure-no-api-key"
    )
    try:
        _wait_healthy(port, process)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert "listening on 0.0.0.0 with NO API key" in err


def _wait_healthy(port: int, process: subprocess.Popen[str]) -> None:
    import time

    # Generous: a server start (imports, migrations, the isolation probe) on a loaded machine.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not start")


@pytest.mark.store
def test_a_foreign_host_header_is_refused_and_changes_nothing(client: Any) -> None:
    body = {"name": "rebound", "type": "process"}
    response = httpx.post(
        client.api_url + "/work_pools", json=body, headers={"Host": "attacker.example"}
    )
    assert response.status_code == 400
    assert "attacker.example" in response.json()["detail"]
    assert "PUSH_POOLS_ALLOWED_HOSTS" in response.json()["detail"]
    assert client.list_work_pools() == []
    # Its own names are fine.
    assert httpx.get(client.api_url + "/work_pools", headers={"Host": "localhost"}).is_success


@pytest.mark.store
def test_a_write_from_another_sites_page_is_refused(client: Any) -> None:
    body = {"name": "csrf", "type": "process"}
    response = httpx.post(
        client.api_url + "/work_pools", json=body, headers={"Origin": "http://attacker.example"}
    )
    assert response.status_code == 403
    assert client.list_work_pools() == []
    # A page of another program on this machine (same host, another port) is another site.
    own = client.api_url.rsplit("/api", 1)[0]
    other_port = own.rsplit(":", 1)[0] + ":8888"
    refused = httpx.post(client.api_url + "/work_pools", json=body, headers={"Origin": other_port})
    assert refused.status_code == 403
    assert client.list_work_pools() == []
    # Reading, or a write from the server's own pages, is not affected.
    assert httpx.post(client.api_url + "/work_pools", json=body, headers={"Origin": own}).is_success


@pytest.mark.store
def test_allowed_hosts_are_configurable(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSH_POOLS_ALLOWED_HOSTS", "flows.example.com, other.example")
    server = server_factory()
    headers = {"Host": "flows.example.com:4200"}
    assert httpx.get(server.api_url + "/work_pools", headers=headers).status_code == 200
    headers = {"Host": "attacker.example"}
    assert httpx.get(server.api_url + "/work_pools", headers=headers).status_code == 400


@pytest.mark.store
def test_any_host_still_refuses_another_sites_writes(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSH_POOLS_ALLOWED_HOSTS", "*")
    server = server_factory()
    body = {"name": "csrf", "type": "process"}
    headers = {"Host": "flows.example.com", "Origin": "http://attacker.example"}
    response = httpx.post(server.api_url + "/work_pools", json=body, headers=headers)
    assert response.status_code == 403
    headers = {"Host": "flows.example.com", "Origin": "http://flows.example.com"}
    assert httpx.post(server.api_url + "/work_pools", json=body, headers=headers).is_success


def test_home_and_its_files_are_private(client: Any, home: Path) -> None:
    client.create_block({"name": "s", "block_type": "secret", "data": {"value": "hush-hush"}})
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    # (The tests' store lives beside the home.)
    for path in (home / "encryption.key", home.parent / "store.db"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.fixture
def saved_block(server_factory: Any, home: Path) -> Path:
    server = server_factory()
    with httpx.Client(base_url=server.api_url) as http:
        body = {"name": "prod", "block_type": "secret", "data": {"value": "hush-hush"}}
        assert http.post("/blocks", json=body).is_success
    server.stop()
    return home / "encryption.key"


@pytest.mark.store
def test_a_missing_key_with_stored_blocks_stops_the_server(
    saved_block: Path, server_factory: Any, home: Path
) -> None:
    saved_block.unlink()
    with pytest.raises(InvalidInput) as exc:
        server_factory()
    assert f"encryption key file {saved_block} is missing" in exc.value.message
    assert "'prod'" in exc.value.message and "PUSH_POOLS_ENCRYPTION_KEY" in exc.value.message
    assert not saved_block.exists(), "a new key was made over the stored secrets"


@pytest.mark.store
def test_the_cli_names_the_key_it_tried_when_it_is_wrong(
    saved_block: Path, home: Path, database_url: str
) -> None:
    original = saved_block.read_bytes()
    env = _env(
        home,
        PUSH_POOLS_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        PUSH_POOLS_DATABASE_URL=database_url,
    )
    process = _server_start(env, "--port", str(free_port()))
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "PUSH_POOLS_ENCRYPTION_KEY does not decrypt the 1 stored block(s)" in err
    assert "Traceback" not in err
    assert saved_block.read_bytes() == original
