"""ApiRecorder: a Plan's records kept by the push-pools server, per work pool name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provisioners.plan import Recorder, ResourceRecord
from push_pools.errors import NotFound

if TYPE_CHECKING:
    from push_pools.client import Client


PROVISIONED_BY = "provisioned_by"


class ApiRecorder(Recorder):
    """The Recorder of provisioners/plan.py over the HTTP API.

    `pool_name` may name a pool that does not exist yet: provisioning runs before the pool is
    created and records under the name it will create.
    """

    def __init__(self, client: Client, pool_name: str) -> None:
        self.client = client
        self.pool_name = pool_name
        # Who is provisioning (the preflight's caller: an ARN, an account email, a client id),
        # kept in each record saved as `provisioned_by`, so the pool's records say by whom.
        self.actor: str | None = None

    def load(self) -> list[ResourceRecord]:
        return [
            ResourceRecord.from_dict(raw) for raw in self.client.list_infrastructure(self.pool_name)
        ]

    def save(self, record: ResourceRecord) -> None:
        raw = record.to_dict()
        if self.actor:
            raw["data"] = {**raw["data"], PROVISIONED_BY: self.actor}
        self.client.save_infrastructure(self.pool_name, raw)

    def remove(self, step: str) -> None:
        try:
            self.client.delete_infrastructure(self.pool_name, step)
        except NotFound:
            pass  # the Recorder contract: forgetting a forgotten step is not an error
