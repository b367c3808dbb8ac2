"""IAM binding steps: a role for the control-plane account on one resource's IAM policy.

- roles/run.developer on the project: create, run and cancel Cloud Run jobs;
- roles/iam.serviceAccountUser on the runtime account only (not on the project): the control
  plane may start jobs as that account and no other.

Policies are changed by read-modify-write: read the policy with its etag, add or remove one
member of one role, write it back with that etag; every other binding (conditional ones too)
is kept as read. A concurrent change makes Google refuse the write (ABORTED): read again and
retry. Verbs follow provisioners/plan.py.

A binding is ours when we added it, or when its member is an account we created (only a crash
between the write and the record could have left it unrecorded); otherwise it is adopted and
teardown leaves it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from provisioners.gcp.base import GcpStep, StepIds, marked_pool
from provisioners.gcp.clients import GcpContext, retry
from provisioners.gcp.errors import absent, canonical_code
from provisioners.plan import ResourceRecord, StepCheck

__all__ = ["ATTEMPTS", "RoleBindingStep", "read_modify_write"]

ATTEMPTS = 6  # writes tried before a run of etag conflicts fails the step


def read_modify_write(
    read: Callable[[], Any],
    write: Callable[[Any], Any],
    change: Callable[[Any], bool],
    *,
    stale: tuple[str, ...] = ("ABORTED",),
) -> None:
    """`change(policy)` edits a policy in place and says whether it changed anything; the
    policy is written back with the etag it was read with, again on an etag conflict (an
    error whose canonical code is in `stale`: Cloud Storage says FAILED_PRECONDITION)."""
    from google.api_core.exceptions import Conflict, PreconditionFailed

    for attempt in range(ATTEMPTS):
        policy = read()
        if not change(policy):
            return
        try:
            write(policy)
            return
        except (Conflict, PreconditionFailed) as exc:
            if canonical_code(exc) not in stale or attempt == ATTEMPTS - 1:
                raise
            # Someone else wrote in between: back off a little and read again; the jitter
            # (not a secret, hence B311) keeps two writers from colliding in step.
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))  # nosec B311


def _members(policy: Any, role: str) -> Any:
    """The members of the role's unconditional binding (None when there is none)."""
    for binding in policy.bindings:
        if binding.role == role and not binding.HasField("condition"):
            return binding.members
    return None


def _grant(policy: Any, role: str, member: str) -> bool:
    members = _members(policy, role)
    if members is not None and member in members:
        return False
    if members is None:
        policy.bindings.add(role=role, members=[member])
    else:
        members.append(member)
    return True


def _revoke(policy: Any, role: str, member: str) -> bool:
    """Remove `member`, and its `deleted:` form (what Google turns it into when the account is
    deleted first), from the role; drop the binding when it is left empty."""
    changed = False
    for binding in list(policy.bindings):
        if binding.role != role or binding.HasField("condition"):
            continue
        kept = [m for m in binding.members if not _is(m, member)]
        if len(kept) != len(binding.members):
            changed = True
            del binding.members[:]
            binding.members.extend(kept)
            if not kept:
                policy.bindings.remove(binding)
    return changed


def _is(candidate: str, member: str) -> bool:
    return candidate == member or candidate.startswith(f"deleted:{member}?uid=")


class RoleBindingStep(GcpStep):
    """`role` for the control-plane account on the project (`on_account` None) or on the
    service account `on_account` (an account id of this plan)."""

    kind = "gcp:iam:binding"
    # Canonical codes of a stale etag on this policy's write (read_modify_write reads again).
    stale: tuple[str, ...] = ("ABORTED",)
    scope = ""  # said after "grant ROLE" in the plan, e.g. " on this bucket only"

    def __init__(
        self, step_id: str, role: str, member_account: str, on_account: str | None = None
    ) -> None:
        self.id = step_id
        self.role = role
        self.member_account = member_account
        self.on_account = on_account
        where = f"service account {on_account}" if on_account else "the project"
        self.title = f"{role} on {where} for {member_account}"

    # --- the policy this step edits --------------------------------------------------------------

    def _resource(self, ctx: GcpContext) -> str:
        if self.on_account is None:
            return f"projects/{ctx.project}"
        return ctx.account_name(self.on_account)

    def _read(self, ctx: GcpContext) -> Any:
        request = {"resource": self._resource(ctx), "options": {"requested_policy_version": 3}}
        if self.on_account is None:
            return ctx.clients.projects.get_iam_policy(request=request, retry=retry())
        return ctx.clients.iam.get_iam_policy(request=request, retry=retry())

    def _write(self, ctx: GcpContext, policy: Any) -> Any:
        # No retry on ABORTED here: a stale etag means reading again (read_modify_write).
        request = {"resource": self._resource(ctx), "policy": policy}
        if self.on_account is None:
            return ctx.clients.projects.set_iam_policy(request=request)
        return ctx.clients.iam.set_iam_policy(request=request)

    def _member(self, ctx: GcpContext) -> str:
        return f"serviceAccount:{ctx.email(self.member_account)}"

    def _prerequisites(self) -> list[str]:
        """Steps whose outputs the policy's address needs: before them (a preview) there is
        nothing to read yet."""
        return [StepIds.CONTROL_ACCOUNT] + ([StepIds.RUNTIME_ACCOUNT] if self.on_account else [])

    # The policy's own shape (IAM's protobuf here): the role's members, grant, revoke.

    def _members_of(self, policy: Any) -> Any:
        return _members(policy, self.role)

    def _grant(self, policy: Any, member: str) -> bool:
        return _grant(policy, self.role, member)

    def _revoke(self, policy: Any, member: str) -> bool:
        return _revoke(policy, self.role, member)

    # --- verbs -----------------------------------------------------------------------------------

    def _record_of(self, ctx: GcpContext, created: bool) -> ResourceRecord:
        resource, member = self._resource(ctx), self._member(ctx)
        data = {"resource": resource, "role": self.role, "member": member}
        return self.record(f"{resource}#{self.role}#{member}", data, created=created)

    def _ours(self, ctx: GcpContext) -> bool:
        record = ctx.outputs.get(StepIds.CONTROL_ACCOUNT)
        return record is not None and record.created

    def _check(self, ctx: GcpContext) -> StepCheck:
        if any(step not in ctx.outputs for step in self._prerequisites()):
            return self.missing(f"grant {self.role}{self.scope}")
        members = self._members_of(self._read(ctx))
        if members is None or self._member(ctx) not in members:
            return self.missing(f"grant {self.role}{self.scope}")
        return self.found(self._record_of(ctx, self._ours(ctx)), detail="granted")

    def _create(self, ctx: GcpContext) -> ResourceRecord:
        member = self._member(ctx)
        added: list[bool] = []

        def change(policy: Any) -> bool:
            done = self._grant(policy, member)
            added.append(done)
            return done

        read_modify_write(
            lambda: self._read(ctx), lambda p: self._write(ctx, p), change, stale=self.stale
        )
        if not added[-1] and not self._ours(ctx):
            # Granted meanwhile by someone else: theirs to keep.
            return self._record_of(ctx, created=False)
        return self._record_of(ctx, created=True)

    def _delete(self, ctx: GcpContext, record: ResourceRecord) -> None:
        from google.api_core.exceptions import NotFound

        member = str(record.data.get("member") or self._member(ctx))
        try:
            read_modify_write(
                lambda: self._read(ctx),
                lambda p: self._write(ctx, p),
                lambda p: self._revoke(p, member),
                stale=self.stale,
            )
        except NotFound:
            pass  # the resource (an account, a bucket) is gone, and its policy with it

    def _sweep(self, ctx: GcpContext) -> None:
        """Remove the binding when its member is, or was, an account we made."""
        account = absent(
            ctx.clients.iam.get_service_account,
            name=ctx.account_name(self.member_account),
            retry=retry(),
        )
        if account is not None and marked_pool(account.description) != ctx.config.pool_name:
            return  # someone else's account: its bindings are theirs
        self._delete(ctx, self._record_of(ctx, created=True))
