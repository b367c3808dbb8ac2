"""The control-plane account's key, kept in an encrypted gcp-credentials block.

The block is the source of truth: while it exists no key is made, so running the provisioning
again never makes a second key. Without it a new key is made; its JSON goes straight into the
block (`service_account_info`) and never into a record, a log or a message. Verbs follow
provisioners/plan.py.

Where an organisation forbids keys (constraints/iam.disableServiceAccountKeyCreation) the step
fails saying so and naming the keyless way: `--no-key`, the server's own application-default
credentials.
"""

from __future__ import annotations

import json

from provisioners.gcp.base import GcpStep, StepIds
from provisioners.gcp.clients import GcpContext, retry
from provisioners.gcp.config import CLOUD
from provisioners.gcp.errors import KEY_CONSTRAINT, absent, key_creation_forbidden
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck

__all__ = ["KeyStep"]


class KeyStep(GcpStep):
    id = StepIds.KEY
    kind = "gcp:iam:service-account-key"

    def __init__(self, account_id: str, block_name: str) -> None:
        self.account_id = account_id
        self.block_name = block_name
        self.title = f"key for {account_id}, stored in block '{block_name}'"

    def _keys(self, ctx: GcpContext) -> list[str]:
        """Names of the account's user-managed keys ([] when the account does not exist)."""
        from google.cloud import iam_admin_v1

        found = absent(
            ctx.clients.iam.list_service_account_keys,
            request={
                "name": ctx.account_name(self.account_id),
                "key_types": [iam_admin_v1.ListServiceAccountKeysRequest.KeyType.USER_MANAGED],
            },
            retry=retry(),
        )
        return [key.name for key in found.keys] if found is not None else []

    def _check(self, ctx: GcpContext) -> StepCheck:
        if not ctx.credentials_store.exists(self.block_name):
            return self.missing(f"new key, saved encrypted in gcp-credentials '{self.block_name}'")
        prior = ctx.outputs.get(self.id)
        recorded = prior.data.get("key") if prior is not None else None
        if StepIds.CONTROL_ACCOUNT not in ctx.outputs:
            keys: list[str] = []  # the account is still to be made (a preview)
        else:
            keys = self._keys(ctx)
        if prior is None or not recorded:
            if not keys:
                # No key of the account at all: the block cannot hold a working one (a leftover
                # of an earlier teardown, or the account was re-made).
                return self.missing(
                    f"block '{self.block_name}' holds no key of {self.account_id}: a new key "
                    "replaces it"
                )
            # A block we have no record of: made by a crash between our key and its record
            # when the account is ours (only we make its keys), else by hand. Either way no
            # second key; ours is forgotten with its block and dies with its account.
            account = ctx.outputs.get(StepIds.CONTROL_ACCOUNT)
            record = self.record(
                f"block:{self.block_name}",
                {"credentials_block": self.block_name, "account": ctx.email(self.account_id)},
                created=account is not None and account.created,
            )
            return self.found(record, detail=f"block '{self.block_name}' exists; no key made")
        key_id = recorded.rpartition("/")[2]
        if recorded not in keys:
            return self.found(prior, [f"key {key_id} no longer exists"])
        return self.found(prior, detail=f"key {key_id} in block '{self.block_name}'")

    def _create(self, ctx: GcpContext) -> ResourceRecord:
        return self._issue(ctx)

    def _update(self, ctx: GcpContext, record: ResourceRecord) -> ResourceRecord:
        return self._issue(ctx)

    def _issue(self, ctx: GcpContext) -> ResourceRecord:
        from google.api_core.exceptions import NotFound

        iam = ctx.clients.iam
        prior = ctx.outputs.get(self.id)
        stale = prior.data.get("key") if prior is not None and prior.created else None
        try:
            # Never retried: a create that took effect before a lost answer would make a second
            # key; a failed step is run again instead.
            made = iam.create_service_account_key(name=ctx.account_name(self.account_id))
        except Exception as exc:
            if key_creation_forbidden(exc):
                raise ProvisioningError(
                    f"your organisation forbids service-account keys in project {ctx.project} "
                    f"(constraints/{KEY_CONSTRAINT}); run again with --no-key: the server then "
                    f"calls Cloud Run with its own application-default credentials, which need "
                    f"the roles granted to {ctx.email(self.account_id)} (run the server as that "
                    "account, or impersonate it)",
                    step_id=self.id,
                    cloud=CLOUD,
                ) from exc
            raise
        try:
            info = json.loads(bytes(made.private_key_data))
            ctx.credentials_store.save(
                self.block_name, {"service_account_info": info, "project": ctx.project}
            )
        except BaseException:
            # Nobody else ever saw the key: a key we could not store is a key to delete.
            absent(iam.delete_service_account_key, name=made.name)
            raise
        if stale and stale != made.name:
            # Our earlier key: the block no longer holds it, so nothing can use it.
            try:
                iam.delete_service_account_key(name=stale)
            except NotFound:
                pass
        return self.record(
            made.name,
            {
                "key": made.name,
                "credentials_block": self.block_name,
                "account": ctx.email(self.account_id),
            },
        )

    def sweep(self, ctx: GcpContext) -> None:
        pass  # an unrecorded key dies with its account (the account's sweep deletes it)

    def _delete(self, ctx: GcpContext, record: ResourceRecord) -> None:
        # The block itself belongs to the CLI (it deletes it after teardown).
        key = record.data.get("key")
        if key:
            absent(ctx.clients.iam.delete_service_account_key, name=key, retry=retry())
