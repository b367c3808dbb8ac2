"""The Azure provisioner for `azure-container-instance:push` pools: `push-pools work-pool create
--type azure-container-instance:push --provision-infra my-pool --subscription S --location L`.

A Plan (provisioners/plan.py) of idempotent steps, one module per resource family:

    subscription.py the subscription, location and resource group the pool lives in (pins
                    them; teardown's final sweep); the location checked against the
                    subscription's own list
    providers.py    Microsoft.ContainerInstance, .ContainerRegistry, .ManagedIdentity
                    registered; never unregistered
    group.py        the resource group (adopted when it exists; never deleted then)
    identity.py     the user-assigned managed identity the container groups run as
    registry.py     an Azure Container Registry named from subscription and pool
    roles.py        AcrPull for the identity on the registry; for the server's principal, Azure
                    Container Instances Contributor Role on the group and Managed Identity
                    Operator on the identity
    secret.py       the server's service principal in an encrypted azure-credentials block
                    (not with --managed-identity)

`config.py` (names, tags, validation), `clients.py` (the azure-mgmt clients and the context),
`errors.py` (azure-core errors -> push-pools errors) and `base.py` (the step base) hold the
rest; `adapter.py` is the provisioner the CLI drives (provisioners/registry.py), `spec.py` what
the CLI reads first.

What push-pools makes is tagged (role assignments: a description) and recorded, so teardown
deletes exactly that, last first; what someone else made under the same names is adopted, used
as is and never deleted.

Importing this package imports nothing else: the CLI reads `spec.py` on every start.
"""
