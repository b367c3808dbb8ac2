"""The Plan engine every cloud provisioner runs: a list of Steps, checked, applied, torn down.

A provisioner (`provisioners/aws.py`, ...) is a list of Steps; this module is the one place that
decides order, resumption and teardown, so each cloud module only implements a step's four verbs
(check / create / update / delete) and their docstrings point back here. A provisioner never
prints or prompts: progress goes to a callback, and the CLI owns prompts, bars and `--json`.

How a run resumes: each step's record is saved right after the step, so a failure at step k
leaves steps < k recorded; a re-run checks every step again, those say EXISTS, and it carries on.
Teardown deletes only what this tool created (`created=True`), in reverse order, and forgets
what it adopted without touching it.

Stdlib and push_pools.errors only: the CLI imports this before it knows which cloud is wanted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from push_pools.errors import NotFound, PushPoolsError

__all__ = [
    "MemoryRecorder",
    "Plan",
    "PlannedStep",
    "ProgressCallback",
    "ProgressEvent",
    "ProvisioningError",
    "Recorder",
    "ResourceRecord",
    "Step",
    "StepCheck",
    "StepStatus",
    "secret_keys",
]


class ProvisioningError(PushPoolsError):
    """A step failed. `step_id` names it (None before any step ran); `cloud` is e.g. "aws"."""

    def __init__(
        self, message: str, *, step_id: str | None = None, cloud: str | None = None
    ) -> None:
        super().__init__(message)
        self.step_id = step_id
        self.cloud = cloud


class StepStatus(StrEnum):
    EXISTS = "exists"
    CREATE = "will be created"
    UPDATE = "will be updated"


@dataclass(frozen=True)
class ResourceRecord:
    """One resource a step owns or adopted, as stored per work pool.

    `data` holds the outputs later steps and the pool's job template need. It must be JSON-safe
    and must never hold a secret (an access key's secret goes into an encrypted block, and only
    the block's name goes here): the Plan refuses to save data with a key `secret_keys` flags.
    """

    step: str  # the step id that owns it, e.g. "iam-user"
    kind: str  # e.g. "aws:iam:user", "aws:ecs:cluster"
    identifier: str  # ARN or id
    created: bool  # True: this tool created it (teardown deletes it); False: adopted
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The wire form the API and `Client.save_infrastructure` take."""
        return {
            "step": self.step,
            "kind": self.kind,
            "identifier": self.identifier,
            "created": self.created,
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ResourceRecord:
        """From the wire form; fields the server adds (pool_name, timestamps) are ignored."""
        return cls(
            step=str(raw["step"]),
            kind=str(raw["kind"]),
            identifier=str(raw["identifier"]),
            created=bool(raw["created"]),
            data=dict(raw.get("data") or {}),
        )


@dataclass(frozen=True)
class StepCheck:
    status: StepStatus
    detail: str = ""  # one line for the preview ("arn:... (drifted: policy)")
    record: ResourceRecord | None = None  # the existing resource, when status != CREATE


class Step(Protocol):
    """One resource. `id` is unique within a plan and stable across versions: records are keyed
    by it, so renaming a step orphans its record (pass the old step as `Plan(retired=...)`)."""

    # Read-only properties here, so plain attributes, properties and frozen dataclass fields
    # all satisfy the protocol.
    @property
    def id(self) -> str: ...

    @property
    def title(self) -> str:
        """One line for people: "IAM user push-pools-my-pool"."""
        ...

    def check(self, ctx: Any) -> StepCheck:
        """Read-only. Must work when earlier steps' outputs are missing from `ctx.outputs`
        (the preview of an empty account). A resource found by our ownership tag or
        deterministic name that this tool made should come back with `created=True`."""
        ...

    def create(self, ctx: Any) -> ResourceRecord:
        """Idempotent: get-or-create by deterministic name or ownership tag."""
        ...

    def update(self, ctx: Any, record: ResourceRecord) -> ResourceRecord:
        """Converge drift on the resource `check` found."""
        ...

    def delete(self, ctx: Any, record: ResourceRecord) -> None:
        """Delete the resource; a resource already gone is not an error."""
        ...


class Recorder(Protocol):
    """Where records live: the server's store (provisioners.records.ApiRecorder) or memory."""

    def load(self) -> list[ResourceRecord]:
        """Every record of the pool, in save order (first save; an upsert keeps its place)."""
        ...

    def save(self, record: ResourceRecord) -> None:
        """Upsert by step id."""
        ...

    def remove(self, step: str) -> None:
        """Forget a step's record; a step with no record is not an error."""
        ...


class MemoryRecorder(Recorder):
    """Records in a dict, for tests and dry runs.

    Data goes through a JSON round trip on save, so a test fails here on data that the server's
    recorder could not store, and no caller can change a saved record by mutating its dict.
    """

    def __init__(self, records: Iterable[ResourceRecord] = ()) -> None:
        self._records: dict[str, ResourceRecord] = {}
        for record in records:
            self.save(record)

    def load(self) -> list[ResourceRecord]:
        return [replace(r, data=_json_copy(r.data)) for r in self._records.values()]

    def save(self, record: ResourceRecord) -> None:
        # Assigning to an existing key keeps its place: the same save order the store keeps.
        self._records[record.step] = replace(record, data=_json_copy(record.data))

    def remove(self, step: str) -> None:
        self._records.pop(step, None)


def _json_copy(data: dict[str, Any]) -> dict[str, Any]:
    try:
        copied = json.loads(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"record data is not JSON-safe: {exc}") from exc
    return copied


# Key names (lower case, letters and digits only) that hold credentials. Records are stored in
# clear and shown by the API, so such keys are refused wherever records are saved.
_SECRET_KEY_NAMES = frozenset(
    {
        "secret",
        "secretkey",
        "secretaccesskey",
        "awssecretaccesskey",
        "sessiontoken",
        "awssessiontoken",
        "token",
        "accesstoken",
        "password",
        "privatekey",
        "privatekeydata",
        "clientsecret",
        "serviceaccountinfo",
        "apikey",
        "connectionstring",
    }
)


def secret_keys(data: Any, path: str = "") -> list[str]:
    """Dotted paths of keys in `data` (nested dicts and lists too) that name a credential.

    "SecretAccessKey", "aws_secret_access_key" and "password" are flagged; "access_key_id",
    "secret_arn" and "block_name" are not.
    """
    found: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if re.sub(r"[^a-z0-9]", "", str(key).lower()) in _SECRET_KEY_NAMES:
                found.append(where)
            found.extend(secret_keys(value, where))
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            found.extend(secret_keys(value, f"{path}[{i}]"))
    return found


@dataclass(frozen=True)
class PlannedStep:
    step_id: str
    title: str
    status: StepStatus
    detail: str


@dataclass(frozen=True)
class ProgressEvent:
    """`index` counts from 1 to `total` within one preview, apply or teardown."""

    step_id: str
    title: str
    phase: str  # "checking"|"creating"|"updating"|"skipped"|"done"|"deleting"|"deleted"|"failed"
    index: int
    total: int
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


class Plan:
    """Runs `steps` in order against `ctx`, keeping one record per step in `recorder`.

    `ctx` is the provisioner's own object (region, pool name, SDK clients, ...); the Plan only
    sets `ctx.outputs: dict[str, ResourceRecord]`, filled from the recorder and then by each
    step, so a step reads earlier steps' outputs as `ctx.outputs["iam-user"].data[...]`.
    `retired`: steps no longer applied, kept so teardown can delete the records they left.
    `cloud` goes into every ProvisioningError.
    """

    def __init__(
        self,
        steps: Sequence[Step],
        ctx: Any,
        recorder: Recorder,
        *,
        retired: Sequence[Step] = (),
        cloud: str | None = None,
    ) -> None:
        ids = [s.id for s in steps] + [s.id for s in retired]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            # Records are keyed by step id: two steps with one id would overwrite each other.
            raise ProvisioningError(f"step ids must be unique; repeated: {duplicates}", cloud=cloud)
        self.steps = list(steps)
        self.retired = list(retired)
        self.ctx = ctx
        self.recorder = recorder
        self.cloud = cloud
        if not isinstance(getattr(ctx, "outputs", None), dict):
            ctx.outputs = {}

    @property
    def outputs(self) -> dict[str, ResourceRecord]:
        outputs: dict[str, ResourceRecord] = self.ctx.outputs
        return outputs

    def preview(self) -> list[PlannedStep]:
        """What apply would do, step by step. Changes nothing: no create, update or save."""
        self._load()
        planned = []
        for step in self.steps:
            check = self._check(step)
            if check.record is not None and check.status != StepStatus.CREATE:
                self.outputs[step.id] = check.record
            else:
                # Later checks must see this step's outputs as missing, as they will be.
                self.outputs.pop(step.id, None)
            planned.append(PlannedStep(step.id, step.title, check.status, check.detail))
        return planned

    def apply(self, progress: ProgressCallback | None = None) -> dict[str, ResourceRecord]:
        """Check every step in order; create what is missing, update what drifted.

        Each record is saved right after its step, so after a failure at step k a re-run
        resumes. Raises ProvisioningError naming the failed step, chained from the cause.
        Returns the record of every step, in step order.
        """
        emit = progress or _ignore
        recorded = self._load()
        total = len(self.steps)
        for index, step in enumerate(self.steps, start=1):
            emit(ProgressEvent(step.id, step.title, "checking", index, total))
            check = self._check(step, emit, index, total)
            # Progress calls stay outside the try: a failing callback is not a failed step.
            if check.status == StepStatus.UPDATE:
                emit(ProgressEvent(step.id, step.title, "updating", index, total, check.detail))
            elif check.status == StepStatus.CREATE:
                emit(ProgressEvent(step.id, step.title, "creating", index, total))
            try:
                record = self._valid(step, self._converge(step, check))
                prior = recorded.get(step.id)
                if prior is not None and prior.created and prior.identifier == record.identifier:
                    # A resource we created stays ours, even when a check that finds it by
                    # name cannot tell: teardown must still delete it.
                    record = replace(record, created=True)
                if record != prior:
                    self.recorder.save(record)
            except Exception as exc:
                raise self._failed(step, exc, emit, index, total) from exc
            self.outputs[step.id] = record
            if check.status == StepStatus.EXISTS:
                emit(ProgressEvent(step.id, step.title, "skipped", index, total, check.detail))
            else:
                emit(ProgressEvent(step.id, step.title, "done", index, total, record.identifier))
        return {step.id: self.outputs[step.id] for step in self.steps}

    def teardown(self, progress: ProgressCallback | None = None) -> list[ResourceRecord]:
        """Delete what this tool created, last first, and forget every record of the pool.

        Records with `created=True` are deleted, then removed; adopted ones are only removed.
        Order: records of steps that are no longer in `steps` first, newest save first (nothing
        in the current plan can depend on them, but they may depend on its resources), then the
        plan's records in reverse step order. Works after a half-finished apply; a second
        teardown does nothing. Returns the records removed, in the order they were removed.
        """
        emit = progress or _ignore
        records = self._load()
        position = {step.id: i for i, step in enumerate(self.steps)}
        orphans = [r for r in records.values() if r.step not in position]
        ours = sorted(
            (r for r in records.values() if r.step in position),
            key=lambda r: position[r.step],
        )
        order = list(reversed(orphans)) + list(reversed(ours))
        deleters = {step.id: step for step in [*self.steps, *self.retired]}
        total = len(order)
        removed: list[ResourceRecord] = []
        for index, record in enumerate(order, start=1):
            step = deleters.get(record.step)
            title = step.title if step is not None else f"{record.kind} {record.identifier}"
            if not record.created:
                self._remove(record, title, emit, index, total)
                emit(
                    ProgressEvent(
                        record.step, title, "skipped", index, total, "adopted: kept, record removed"
                    )
                )
                removed.append(record)
                continue
            if step is None:
                reason = "no step in this version of the provisioner can delete it"
                emit(ProgressEvent(record.step, title, "failed", index, total, reason))
                raise ProvisioningError(
                    f"cannot delete {record.kind} {record.identifier}: no step '{record.step}' "
                    "in this version of the provisioner. Delete it by hand, then forget its "
                    f"record (DELETE /api/work_pools/<pool>/infrastructure/{record.step}) and "
                    "run the teardown again.",
                    step_id=record.step,
                    cloud=self.cloud,
                )
            emit(ProgressEvent(record.step, title, "deleting", index, total, record.identifier))
            try:
                step.delete(self.ctx, record)
            except NotFound:
                pass  # deleted out of band: what teardown wanted anyway
            except Exception as exc:
                raise self._failed(step, exc, emit, index, total) from exc
            self._remove(record, title, emit, index, total)
            emit(ProgressEvent(record.step, title, "deleted", index, total, record.identifier))
            removed.append(record)
        return removed

    # --- internals -----------------------------------------------------------------------------

    def _load(self) -> dict[str, ResourceRecord]:
        try:
            records = {r.step: r for r in self.recorder.load()}
        except Exception as exc:
            raise ProvisioningError(
                f"could not read the provisioning records: {_describe(exc)}", cloud=self.cloud
            ) from exc
        # The same dict object: a provisioner may hold a reference to ctx.outputs.
        self.outputs.clear()
        self.outputs.update(records)
        return records

    def _check(
        self, step: Step, emit: ProgressCallback | None = None, index: int = 0, total: int = 0
    ) -> StepCheck:
        try:
            check = step.check(self.ctx)
            if check.status != StepStatus.CREATE and check.record is None:
                raise ProvisioningError(
                    f"check() said {check.status.name} without the record of the resource"
                )
        except Exception as exc:
            raise self._failed(step, exc, emit, index, total) from exc
        return check

    def _converge(self, step: Step, check: StepCheck) -> ResourceRecord:
        if check.status == StepStatus.CREATE:
            return step.create(self.ctx)
        if check.record is None:  # _check rules this out; this keeps the type checker sure
            raise ProvisioningError(f"check() said {check.status.name} without a record")
        if check.status == StepStatus.UPDATE:
            return step.update(self.ctx, check.record)
        return check.record

    def _valid(self, step: Step, record: ResourceRecord) -> ResourceRecord:
        if not isinstance(record, ResourceRecord):
            raise ProvisioningError(f"returned {type(record).__name__}, not a ResourceRecord")
        if record.step != step.id:
            raise ProvisioningError(f"returned a record for step '{record.step}'")
        leaked = secret_keys(record.data)
        if leaked:
            # Records are stored in clear: a secret belongs in an encrypted block.
            raise ProvisioningError(
                f"record data must not hold secrets (keys {leaked}); store them in a block "
                "and record the block's name"
            )
        _json_copy(record.data)
        return record

    def _remove(
        self, record: ResourceRecord, title: str, emit: ProgressCallback, index: int, total: int
    ) -> None:
        try:
            self.recorder.remove(record.step)
        except Exception as exc:
            emit(ProgressEvent(record.step, title, "failed", index, total, _describe(exc)))
            raise ProvisioningError(
                f"{title} ({record.step}): could not remove its record: {_describe(exc)}",
                step_id=record.step,
                cloud=self.cloud,
            ) from exc
        self.outputs.pop(record.step, None)

    def _failed(
        self, step: Step, exc: Exception, emit: ProgressCallback | None, index: int, total: int
    ) -> ProvisioningError:
        reason = _describe(exc)
        if emit is not None:
            emit(ProgressEvent(step.id, step.title, "failed", index, total, reason))
        cloud = exc.cloud if isinstance(exc, ProvisioningError) and exc.cloud else self.cloud
        return ProvisioningError(
            f"{step.title} ({step.id}) failed: {reason}", step_id=step.id, cloud=cloud
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PushPoolsError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _ignore(_event: ProgressEvent) -> None:
    pass
