"""ApiRecorder: a Plan's records kept by the push-pools server, per work pool name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provisioners.plan import Recorder, ResourceRecord
from push_pools.errors import NotFound

if TYPE_CHECKING:
    from push_pools.client import Client


class ApiRecorder(Recorder):
    """The Recorder of provisioners/plan.py over the HTTP API.

    `pool_name` may name a pool that does not exist yet: provisioning runs before the pool is
    created and records under the name it will create.
    """

    def __init__(self, client: Client, pool_name: str) -> None:
        self.client = client
        self.pool_name = pool_name

    def load(self) -> list[ResourceRecord]:
        return [
            ResourceRecord.from_dict(raw) for raw in self.client.list_infrastructure(self.pool_name)
        ]

    def save(self, record: ResourceRecord) -> None:
        self.client.save_infrastructure(self.pool_name, record.to_dict())

    def remove(self, step: str) -> None:
        try:
            self.client.delete_infrastructure(self.pool_name, step)
        except NotFound:
            pass  # the Recorder contract: forgetting a forgotten step is not an error
