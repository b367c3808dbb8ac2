"""The GCP provisioner for `cloud-run:push` pools: `push-pools work-pool create --type
cloud-run:push --provision-infra my-pool --project P --region R`.

A Plan (provisioners/plan.py) of idempotent steps, one module per resource family:

    project.py   the project and region the pool lives in (pins them; teardown's final sweep)
    services.py  run, artifactregistry and iam APIs enabled (Service Usage); never disabled
    artifacts.py an Artifact Registry docker repository in the region
    storage.py   a Cloud Storage bucket for the pool's code bundles (uniform access, public
                 access prevented), and roles/storage.objectAdmin on it only for the
                 control-plane account
    accounts.py  the runtime service account the jobs run as, and the control-plane account
                 the server calls Cloud Run as
    bindings.py  roles/run.developer on the project and roles/iam.serviceAccountUser on the
                 runtime account only, for the control-plane account (read-modify-write of the
                 IAM policy, every other binding kept, retried on etag conflicts)
    keys.py      the control-plane account's key, in an encrypted gcp-credentials block made
                 only when the block does not exist (not with --no-key)

`config.py` (names, labels, validation), `clients.py` (credentials and the Google clients;
PUSH_POOLS_GCP_ENDPOINT points them at an emulator), `errors.py` (google.api_core errors ->
push-pools errors) and `base.py` (the shared step shape) hold the rest; `adapter.py` is the
provisioner the CLI drives (provisioners/registry.py), `spec.py` what the CLI reads first.

What push-pools makes is marked (labels on the repository and the bucket, a description on
the service accounts) and recorded, so teardown deletes exactly that, last first; what someone
else made under the same names is adopted, used as is and never deleted.

Importing this package imports nothing else: the CLI reads `spec.py` on every start.
"""
