"""The GCP provisioner in the shape provisioners/registry.py's Provisioner names.

Where to provision, in order: the flags; the pool's records (a provisioned pool stays where it
is); the application-default credentials' project; for the region CLOUDSDK_RUN_REGION,
CLOUDSDK_COMPUTE_REGION (gcloud's settings as environment variables), then us-central1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from provisioners.gcp.base import StepIds
from provisioners.gcp.config import DEFAULT_REGION, GcpProvisionConfig
from provisioners.plan import ResourceRecord
from provisioners.registry import CredentialsStore, Preflight
from push_pools.errors import InvalidInput

__all__ = ["GcpProvisioner"]


def _require_sdk() -> None:
    try:
        import google.auth  # noqa: F401
        from google.cloud import (  # noqa: F401
            artifactregistry_v1,
            iam_admin_v1,
            resourcemanager_v3,
            service_usage_v1,
        )
    except ImportError as exc:
        raise InvalidInput(
            f"provisioning Google Cloud needs its client libraries ({exc.name} is missing): "
            "pip install 'push-pools[gcp]'"
        ) from exc


class GcpProvisioner:
    cloud = "gcp"

    def __init__(
        self,
        pool_name: str,
        values: Mapping[str, Any],
        *,
        records: Sequence[ResourceRecord] = (),
    ) -> None:
        from provisioners.gcp.clients import GcpClients, caller_of, default_credentials
        from push_pools.settings import gcp_endpoint

        _require_sdk()
        pinned = next((r.data for r in records if r.step == StepIds.PROJECT), {})
        credentials, adc_project = default_credentials()
        project = values.get("project") or pinned.get("project") or adc_project
        if not project:
            raise InvalidInput(
                "no Google Cloud project: pass --project (the application-default credentials "
                "name none)"
            )
        region = (
            values.get("region")
            or pinned.get("region")
            or os.environ.get("CLOUDSDK_RUN_REGION")
            or os.environ.get("CLOUDSDK_COMPUTE_REGION")
            or DEFAULT_REGION
        )
        key = values.get("key")
        self.config = GcpProvisionConfig(
            pool_name=pool_name, project=project, region=region, key=key is not False
        )
        self.caller = caller_of(credentials)
        self.clients = GcpClients(credentials, gcp_endpoint())

    def preflight(self) -> Preflight:
        from google.api_core.exceptions import GoogleAPICallError

        from provisioners.gcp.clients import retry
        from provisioners.gcp.errors import canonical_code, translate_errors

        project = self.config.project
        with translate_errors():
            try:
                self.clients.projects.get_project(name=f"projects/{project}", retry=retry())
            except GoogleAPICallError as exc:
                if canonical_code(exc) != "PERMISSION_DENIED":
                    raise
                # Google answers the same for a project that does not exist and for one the
                # caller may not see.
                raise InvalidInput(
                    f"Google Cloud project {project!r} does not exist or {self.caller} may not "
                    "see it (resourcemanager.projects.get): check --project"
                ) from exc
        note = ""
        if not self.config.key:
            control = self.config.account_email(self.config.names.control_account)
            note = (
                f"--no-key: no key and no credentials block; run the server with "
                f"application-default credentials of {control} (or of an identity with its roles)"
            )
        return Preflight(project, self.caller, self.config.region, note, scope="project")

    def plan(self, recorder: Any, *, credentials: CredentialsStore) -> Any:
        from provisioners.gcp.build import build_gcp_plan

        return build_gcp_plan(
            self.config, recorder, clients=self.clients, credentials_store=credentials
        )

    def template_defaults(self, outputs: dict[str, Any]) -> dict[str, Any]:
        from provisioners.gcp.build import template_defaults

        return template_defaults(outputs, self.config)

    def credentials_block_name(self) -> str | None:
        return self.config.credentials_block_name
