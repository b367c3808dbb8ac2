"""The GCP provisioner as the CLI sees it: its pool type, flags and credentials block type.

Stdlib only (see provisioners/options.py); `provisioners.gcp.adapter` holds the provisioner.
"""

from __future__ import annotations

from provisioners.options import ProvisionerSpec, ProvisionOption

__all__ = ["PROVISIONER"]

PROVISIONER = ProvisionerSpec(
    cloud="gcp",
    pool_types=("cloud-run:push",),
    credentials_block_type="gcp-credentials",
    provisioner="provisioners.gcp.adapter:GcpProvisioner",
    creates="APIs enabled, Artifact Registry repository, code-bundle bucket, runtime and "
    "control-plane service accounts with their roles, a key in a gcp-credentials block",
    options=(
        ProvisionOption(
            "project",
            "Google Cloud project ID (default: the application-default credentials' project; "
            "a provisioned pool keeps its project).",
        ),
        ProvisionOption(
            "region",
            "Google Cloud region with Cloud Run (default: CLOUDSDK_RUN_REGION, "
            "CLOUDSDK_COMPUTE_REGION or us-central1; a provisioned pool keeps its region).",
        ),
        ProvisionOption(
            "key",
            "Make a key for the control-plane service account and keep it in an encrypted "
            "gcp-credentials block; --no-key where the organisation forbids keys: the server "
            "then uses its own application-default credentials.",
            value_type=bool,
            default=True,
        ),
    ),
)
