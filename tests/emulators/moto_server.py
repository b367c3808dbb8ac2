"""moto's server on 127.0.0.1 for tests that drive real boto3 clients over HTTP.

Start one per test module (about a second) and `reset()` it between tests (milliseconds):

    from emulators.moto_server import MotoServer, aws_test_env

    @pytest.fixture(scope="module")
    def moto() -> Iterator[MotoServer]:
        with MotoServer() as server:
            yield server

The server runs in this process, so moto's backends are reachable for the few things no AWS
API can do (moto's internal API; it may change between moto versions).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

__all__ = ["MotoServer", "aws_test_env"]


class MotoServer:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # verbose=False does not silence werkzeug's per-request log lines.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""
        self._managed_policies: dict[str, Any] | None = None

    def start(self) -> MotoServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every resource in every account and region."""
        self.post("/moto-api/reset", {})

    def add_aws_managed_policies(self, *names: str, account_id: str = "123456789012") -> None:
        """Make AWS managed policies (e.g. AmazonECSTaskExecutionRolePolicy) attachable.

        moto knows them but loads none by default; loading all of them
        (MOTO_IAM_LOAD_MANAGED_POLICIES=true) costs seconds per reset, so add just these to the
        account's IAM backend, through moto's internal API (the server runs in this process).
        """
        from moto.iam.aws_managed_policies import aws_managed_policies_data
        from moto.iam.models import AWSManagedPolicy, iam_backends

        if self._managed_policies is None:
            self._managed_policies = json.loads(aws_managed_policies_data)
        backend = iam_backends[account_id]["aws"]
        for name in names:
            policy = AWSManagedPolicy.from_data(
                name, account_id, "aws", self._managed_policies[name]
            )
            backend.aws_managed_policies.append(policy)
            backend.managed_policies[policy.arn] = policy

    def post(self, path: str, payload: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.endpoint + path, data=json.dumps(payload).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def aws_test_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, region: str = "us-east-1"
) -> None:
    """Fake credentials and a region in the environment, and nothing of the developer's.

    The AWS config files point into tmp_path (no real profile can leak in), the instance
    metadata lookup is off (no 1 s timeouts when a test removes the credentials).
    """
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("MOTO_IAM_LOAD_MANAGED_POLICIES", raising=False)
