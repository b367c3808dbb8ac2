"""Credentials, the Google clients, and the context object every GCP step receives.

Resource Manager, Service Usage and Artifact Registry speak REST, Cloud Storage its JSON API;
IAM admin has no REST transport in its Python client, so it speaks gRPC. `PUSH_POOLS_GCP_ENDPOINT`
(push_pools.settings.gcp_endpoint) points all of them at one emulator: the REST clients by
`api_endpoint`, IAM by a channel to the same host and port (local TCP credentials, which carry
the bearer token as a real channel to Google would).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provisioners.gcp.config import GcpNames, GcpProvisionConfig, InjectedFailure
from provisioners.gcp.errors import NO_CREDENTIALS
from provisioners.plan import ResourceRecord
from push_pools.errors import InvalidInput

__all__ = ["GcpClients", "GcpContext", "default_credentials", "retry"]

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
OPERATION_TIMEOUT = 300.0


def default_credentials() -> tuple[Any, str | None]:
    """Application-default credentials and their project (None when they name none).

    InvalidInput, one line, when there are none.
    """
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, project = google.auth.default(scopes=SCOPES)
    except DefaultCredentialsError as exc:
        raise InvalidInput(NO_CREDENTIALS) from exc
    return credentials, project or None


def caller_of(credentials: Any) -> str:
    """Who the credentials are, for the plan's headline."""
    email = getattr(credentials, "service_account_email", None)
    if isinstance(email, str) and "@" in email:
        return email
    return "application-default credentials"


def retry() -> Any:
    """The retry every call takes: throttling and unavailability, with backoff, for a minute.
    Only for calls that are safe to repeat (reads, and creates whose ALREADY_EXISTS we adopt)."""
    from google.api_core import exceptions
    from google.api_core import retry as retries

    return retries.Retry(
        predicate=retries.if_exception_type(
            exceptions.TooManyRequests,
            exceptions.ServiceUnavailable,
            exceptions.InternalServerError,
        ),
        initial=0.2,
        maximum=5.0,
        multiplier=2.0,
        timeout=60.0,
    )


class GcpClients:
    """Lazily made clients, all with the same credentials (and endpoint, when set)."""

    def __init__(self, credentials: Any, endpoint: str | None) -> None:
        self.credentials = credentials
        self.endpoint = endpoint
        self._made: dict[str, Any] = {}

    def _rest(self, name: str, make: Callable[..., Any]) -> Any:
        if name not in self._made:
            options = {"api_endpoint": self.endpoint} if self.endpoint else None
            self._made[name] = make(
                credentials=self.credentials, transport="rest", client_options=options
            )
        return self._made[name]

    @property
    def projects(self) -> Any:
        from google.cloud import resourcemanager_v3

        return self._rest("projects", resourcemanager_v3.ProjectsClient)

    @property
    def services(self) -> Any:
        from google.cloud import service_usage_v1

        return self._rest("services", service_usage_v1.ServiceUsageClient)

    @property
    def artifacts(self) -> Any:
        from google.cloud import artifactregistry_v1

        return self._rest("artifacts", artifactregistry_v1.ArtifactRegistryClient)

    def storage(self, project: str) -> Any:
        """The Cloud Storage client (JSON API; google-cloud-core's own auth path)."""
        if "storage" not in self._made:
            from google.cloud import storage  # type: ignore[attr-defined]  # no type hints

            options = {"api_endpoint": self.endpoint} if self.endpoint else None
            self._made["storage"] = storage.Client(
                project=project, credentials=self.credentials, client_options=options
            )
        return self._made["storage"]

    @property
    def iam(self) -> Any:
        if "iam" not in self._made:
            from google.cloud import iam_admin_v1

            if self.endpoint is None:
                self._made["iam"] = iam_admin_v1.IAMClient(credentials=self.credentials)
            else:
                self._made["iam"] = iam_admin_v1.IAMClient(transport=self._iam_transport())
        return self._made["iam"]

    def _iam_transport(self) -> Any:
        import grpc  # type: ignore[import-untyped]
        from google.auth.transport.grpc import AuthMetadataPlugin
        from google.auth.transport.requests import Request
        from google.cloud.iam_admin_v1.services.iam.transports import IAMGrpcTransport

        target = (self.endpoint or "").removeprefix("http://").removeprefix("https://")
        channel = grpc.secure_channel(
            target,
            grpc.composite_channel_credentials(
                grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
                grpc.metadata_call_credentials(AuthMetadataPlugin(self.credentials, Request())),
            ),
        )
        return IAMGrpcTransport(channel=channel)


class GcpContext:
    """What steps share: config, names, clients, the credentials store, outputs.

    `outputs` is filled by the Plan (records loaded, then each step's record).
    `pending_services`: APIs the services step will enable; checks of resources behind them
    answer "will be created" without calling an API that is still off.
    """

    def __init__(
        self,
        config: GcpProvisionConfig,
        clients: GcpClients,
        *,
        credentials_store: Any,
    ) -> None:
        self.config = config
        self.clients = clients
        self.project = config.project
        self.region = config.region
        self.names: GcpNames = config.names
        self.labels = config.labels
        self.credentials_store = credentials_store
        self.outputs: dict[str, ResourceRecord] = {}
        self.pending_services: set[str] = set()

    def output(self, step_id: str, key: str, default: Any = None) -> Any:
        record = self.outputs.get(step_id)
        return record.data.get(key, default) if record is not None else default

    def email(self, account_id: str) -> str:
        return self.config.account_email(account_id)

    def account_name(self, account_id: str) -> str:
        return f"projects/{self.project}/serviceAccounts/{self.email(account_id)}"

    def maybe_fail(self, step_id: str) -> None:
        """The `fail_at_step` test hook (see GcpProvisionConfig)."""
        if self.config.fail_at_step == step_id:
            raise InjectedFailure(f"injected failure after creating step {step_id} (test hook)")
