"""The provisioning Plan engine (provisioners/plan.py) and where its records live.

The engine runs against fake steps over an in-memory "cloud" dict; the store and API tests at
the end run the same engine through ApiRecorder against a live server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from provisioners.plan import (
    MemoryRecorder,
    Plan,
    PlannedStep,
    ProgressEvent,
    ProvisioningError,
    ResourceRecord,
    StepCheck,
    StepStatus,
    secret_keys,
)
from provisioners.records import ApiRecorder
from push_pools.client import Client
from push_pools.errors import InvalidInput, NotFound

OWNER_TAG = {"managed-by": "push-pools"}
STEP_IDS = ["network", "role", "user", "cluster", "log-group"]


# --- a fake cloud and its steps ----------------------------------------------------------------


@dataclass
class Ctx:
    """What a provisioner passes to its steps: here, the fake cloud and call bookkeeping."""

    cloud: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, ResourceRecord] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    made: Counter[str] = field(default_factory=Counter)  # resources that came into being
    fail: tuple[str, str] | None = None  # (step id, "check" | "before" | "after")
    strict_delete: bool = False  # delete raises NotFound for a missing resource

    def verbs(self, verb: str) -> list[str]:
        return [step for v, step in self.calls if v == verb]


class FakeStep:
    """A resource named after its step, tagged as ours when we make it; it needs its parent's
    ARN, so it can only be created after the step before it."""

    def __init__(self, step_id: str, parent: str | None, size: int = 1) -> None:
        self.id = step_id
        self.title = f"fake {step_id}"
        self.parent = parent
        self.size = size

    def _record(self, resource: dict[str, Any]) -> ResourceRecord:
        return ResourceRecord(
            step=self.id,
            kind=f"fake:{self.id}",
            identifier=resource["arn"],
            created=resource["tags"] == OWNER_TAG,  # only our tag makes it ours
            data={"arn": resource["arn"], "size": resource["size"]},
        )

    def _maybe_fail(self, ctx: Ctx, when: str) -> None:
        if ctx.fail == (self.id, when):
            raise RuntimeError(f"injected failure {when} {self.id}")

    def check(self, ctx: Ctx) -> StepCheck:
        ctx.calls.append(("check", self.id))
        self._maybe_fail(ctx, "check")
        resource = ctx.cloud.get(self.id)
        if resource is None:
            # Must not need the parent's outputs: in a preview of an empty world they are missing.
            return StepCheck(StepStatus.CREATE)
        record = self._record(resource)
        if resource["size"] != self.size:
            return StepCheck(StepStatus.UPDATE, f"{resource['arn']} (drifted: size)", record)
        return StepCheck(StepStatus.EXISTS, resource["arn"], record)

    def create(self, ctx: Ctx) -> ResourceRecord:
        ctx.calls.append(("create", self.id))
        self._maybe_fail(ctx, "before")
        parent_arn = ctx.outputs[self.parent].data["arn"] if self.parent else None
        if self.id not in ctx.cloud:  # get-or-create by name
            ctx.made[self.id] += 1
            ctx.cloud[self.id] = {
                "arn": f"arn:fake:{self.id}",
                "size": self.size,
                "parent": parent_arn,
                "tags": dict(OWNER_TAG),
            }
        self._maybe_fail(ctx, "after")  # e.g. a wait that timed out after the create call
        return self._record(ctx.cloud[self.id])

    def update(self, ctx: Ctx, record: ResourceRecord) -> ResourceRecord:
        ctx.calls.append(("update", self.id))
        ctx.cloud[self.id]["size"] = self.size
        return self._record(ctx.cloud[self.id])

    def delete(self, ctx: Ctx, record: ResourceRecord) -> None:
        ctx.calls.append(("delete", self.id))
        if record.identifier != f"arn:fake:{self.id}":
            raise AssertionError(f"asked to delete {record.identifier} as {self.id}")
        if self.id not in ctx.cloud:
            if ctx.strict_delete:
                raise NotFound(f"{record.identifier} does not exist")
            return
        # The parent must still exist: teardown goes children first.
        parent = ctx.cloud[self.id]["parent"]
        if parent is not None and parent.removeprefix("arn:fake:") not in ctx.cloud:
            raise AssertionError(f"{self.id} deleted after its parent {parent}")
        del ctx.cloud[self.id]


def make_steps(ids: list[str] = STEP_IDS) -> list[FakeStep]:
    return [FakeStep(step_id, ids[i - 1] if i else None) for i, step_id in enumerate(ids)]


@pytest.fixture
def ctx() -> Ctx:
    return Ctx()


@pytest.fixture
def recorder() -> MemoryRecorder:
    return MemoryRecorder()


def plan_for(ctx: Ctx, recorder: Any, steps: list[FakeStep] | None = None, **kw: Any) -> Plan:
    return Plan(steps if steps is not None else make_steps(), ctx, recorder, **kw)


def recorded_steps(recorder: MemoryRecorder) -> list[str]:
    return [r.step for r in recorder.load()]


# --- preview and apply -------------------------------------------------------------------------


def test_preview_of_an_empty_world_creates_everything_and_changes_nothing(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    planned = plan_for(ctx, recorder).preview()

    assert planned == [PlannedStep(s, f"fake {s}", StepStatus.CREATE, "") for s in STEP_IDS]
    assert ctx.cloud == {}
    assert recorder.load() == []
    assert ctx.verbs("create") == ctx.verbs("update") == []


def test_apply_creates_in_order_and_records_each_step(ctx: Ctx, recorder: MemoryRecorder) -> None:
    result = plan_for(ctx, recorder).apply()

    assert ctx.verbs("create") == STEP_IDS
    assert list(result) == STEP_IDS
    assert recorded_steps(recorder) == STEP_IDS
    assert all(r.created for r in recorder.load())
    assert result["user"].data == {"arn": "arn:fake:user", "size": 1}
    # Each resource got its parent's ARN from ctx.outputs: the order held.
    assert ctx.cloud["user"]["parent"] == "arn:fake:role"
    assert ctx.outputs == result


def test_apply_again_creates_and_updates_nothing(ctx: Ctx, recorder: MemoryRecorder) -> None:
    plan_for(ctx, recorder).apply()
    ctx.calls.clear()

    again = plan_for(ctx, recorder).apply()

    assert ctx.verbs("create") == ctx.verbs("update") == []
    assert ctx.verbs("check") == STEP_IDS
    assert list(again) == STEP_IDS
    assert [p.status for p in plan_for(ctx, recorder).preview()] == [StepStatus.EXISTS] * 5


def test_drift_is_previewed_as_update_and_converged_by_one_update(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    plan_for(ctx, recorder).apply()
    ctx.cloud["user"]["size"] = 99  # changed out of band
    ctx.calls.clear()

    planned = {p.step_id: p for p in plan_for(ctx, recorder).preview()}
    assert planned["user"].status == StepStatus.UPDATE
    assert planned["user"].detail == "arn:fake:user (drifted: size)"
    assert {p.status for s, p in planned.items() if s != "user"} == {StepStatus.EXISTS}
    assert ctx.cloud["user"]["size"] == 99, "preview changed the world"

    plan_for(ctx, recorder).apply()

    assert ctx.verbs("update") == ["user"]
    assert ctx.verbs("create") == []
    assert ctx.cloud["user"]["size"] == 1
    assert {r.step: r for r in recorder.load()}["user"].data["size"] == 1


@pytest.mark.parametrize("when", ["check", "before", "after"])
@pytest.mark.parametrize("k", range(len(STEP_IDS)))
def test_failure_at_any_step_names_it_and_a_rerun_resumes(
    ctx: Ctx, recorder: MemoryRecorder, k: int, when: str
) -> None:
    failing = STEP_IDS[k]
    ctx.fail = (failing, when)

    with pytest.raises(ProvisioningError) as exc:
        plan_for(ctx, recorder, cloud="fake").apply()

    assert exc.value.step_id == failing
    assert exc.value.cloud == "fake"
    assert f"fake {failing} ({failing}) failed" in exc.value.message
    assert isinstance(exc.value.__cause__, RuntimeError)
    assert recorded_steps(recorder) == STEP_IDS[:k]
    made_before_failure = STEP_IDS[: k + 1] if when == "after" else STEP_IDS[:k]
    assert sorted(ctx.cloud) == sorted(made_before_failure), "a step after k ran"

    ctx.fail = None
    ctx.calls.clear()
    plan_for(ctx, recorder).apply()

    assert recorded_steps(recorder) == STEP_IDS
    assert ctx.verbs("create") == [s for s in STEP_IDS if s not in made_before_failure]
    assert ctx.made == Counter(STEP_IDS), "a resource was created twice"
    # What the failed run made (tagged as ours) is ours to delete, not adopted.
    assert all(r.created for r in recorder.load())


def test_errors_keep_the_cloud_of_a_provisioning_error_raised_by_a_step(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    step = make_steps(["only"])[0]

    def create(_ctx: Ctx) -> ResourceRecord:
        raise ProvisioningError("AccessDenied: not allowed to CreateUser", cloud="aws")

    step.create = create  # type: ignore[method-assign]
    with pytest.raises(ProvisioningError) as exc:
        Plan([step], ctx, recorder).apply()
    assert (exc.value.step_id, exc.value.cloud) == ("only", "aws")
    assert "AccessDenied: not allowed to CreateUser" in exc.value.message


def test_a_check_that_finds_a_resource_must_return_its_record(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    step = make_steps(["only"])[0]
    step.check = lambda _ctx: StepCheck(StepStatus.EXISTS, "arn:x")  # type: ignore[method-assign]
    with pytest.raises(ProvisioningError, match="without the record") as exc:
        Plan([step], ctx, recorder).apply()
    assert exc.value.step_id == "only"


def test_secrets_in_record_data_are_refused_before_anything_is_saved(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    step = make_steps(["access-key"])[0]
    leaky = ResourceRecord(
        "access-key", "fake:key", "AKIA1", True, {"access_key_id": "AKIA1", "SecretAccessKey": "s"}
    )
    step.create = lambda _ctx: leaky  # type: ignore[method-assign]
    with pytest.raises(ProvisioningError, match="SecretAccessKey"):
        Plan([step], ctx, recorder).apply()
    assert recorder.load() == []


def test_secret_keys_flags_credentials_but_not_their_names_or_ids() -> None:
    data = {
        "access_key_id": "AKIA1",
        "secret_arn": "arn:aws:secretsmanager:...",
        "block_name": "aws-pool",
        "nested": [{"aws_secret_access_key": "x"}, {"Password": "y"}],
        "sessionToken": "z",
    }
    assert secret_keys(data) == [
        "nested[0].aws_secret_access_key",
        "nested[1].Password",
        "sessionToken",
    ]


def test_record_data_must_be_json(ctx: Ctx, recorder: MemoryRecorder) -> None:
    step = make_steps(["only"])[0]
    odd = ResourceRecord("only", "fake:only", "arn:fake:only", True, {"when": object()})
    step.create = lambda _ctx: odd  # type: ignore[method-assign]
    with pytest.raises(ProvisioningError, match="not JSON-safe"):
        Plan([step], ctx, recorder).apply()
    assert recorder.load() == []


def test_step_ids_must_be_unique(ctx: Ctx, recorder: MemoryRecorder) -> None:
    with pytest.raises(ProvisioningError, match="unique"):
        Plan(make_steps(["a", "b", "a"]), ctx, recorder)


def test_a_resource_we_created_stays_ours_when_its_check_cannot_tell(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    plan_for(ctx, recorder).apply()
    ctx.cloud["role"]["tags"] = {}  # someone stripped our tag: the check now says adopted

    plan_for(ctx, recorder).apply()

    assert {r.step: r.created for r in recorder.load()}["role"] is True
    plan_for(ctx, recorder).teardown()
    assert ctx.cloud == {}


# --- teardown ----------------------------------------------------------------------------------


def adopt(ctx: Ctx, step_id: str) -> None:
    """A resource that was there before us, without our tag."""
    ctx.cloud[step_id] = {
        "arn": f"arn:fake:{step_id}",
        "size": 1,
        "parent": None,
        "tags": {"team": "them"},
    }


def test_teardown_deletes_what_we_created_in_reverse_and_keeps_what_we_adopted(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    adopt(ctx, "role")
    plan_for(ctx, recorder).apply()
    assert {r.step: r.created for r in recorder.load()}["role"] is False
    ctx.calls.clear()

    removed = plan_for(ctx, recorder).teardown()

    assert ctx.verbs("delete") == ["log-group", "cluster", "user", "network"]
    assert [r.step for r in removed] == list(reversed(STEP_IDS))
    assert list(ctx.cloud) == ["role"], "the adopted resource was deleted"
    assert recorder.load() == []
    assert ctx.outputs == {}


def test_teardown_after_a_half_finished_apply(ctx: Ctx, recorder: MemoryRecorder) -> None:
    ctx.fail = ("user", "before")
    with pytest.raises(ProvisioningError):
        plan_for(ctx, recorder).apply()
    ctx.calls.clear()

    plan_for(ctx, recorder).teardown()

    assert ctx.verbs("delete") == ["role", "network"]
    assert ctx.cloud == {}
    assert recorder.load() == []


def test_teardown_is_idempotent(ctx: Ctx, recorder: MemoryRecorder) -> None:
    plan_for(ctx, recorder).apply()
    plan_for(ctx, recorder).teardown()
    ctx.calls.clear()

    assert plan_for(ctx, recorder).teardown() == []
    assert ctx.calls == []


@pytest.mark.parametrize("strict_delete", [False, True], ids=["tolerant-step", "step-raises"])
def test_teardown_tolerates_a_resource_deleted_out_of_band(
    ctx: Ctx, recorder: MemoryRecorder, strict_delete: bool
) -> None:
    plan_for(ctx, recorder).apply()
    del ctx.cloud["log-group"]
    ctx.strict_delete = strict_delete

    removed = plan_for(ctx, recorder).teardown()

    assert len(removed) == len(STEP_IDS)
    assert ctx.cloud == {}
    assert recorder.load() == []


def test_a_failed_teardown_names_the_step_and_a_rerun_finishes(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    steps = make_steps()
    plan_for(ctx, recorder, steps).apply()

    def refuse(_ctx: Ctx, _record: ResourceRecord) -> None:
        raise RuntimeError("DependencyViolation")

    original = steps[2].delete
    steps[2].delete = refuse  # type: ignore[method-assign]
    with pytest.raises(ProvisioningError) as exc:
        plan_for(ctx, recorder, steps).teardown()
    assert exc.value.step_id == "user"
    assert recorded_steps(recorder) == ["network", "role", "user"]

    steps[2].delete = original  # type: ignore[method-assign]
    plan_for(ctx, recorder, steps).teardown()
    assert ctx.cloud == {}
    assert recorder.load() == []


def test_records_of_retired_steps_are_torn_down_first_newest_first(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    old = make_steps(["network", "role", "old-a", "old-b"])
    old[2].parent = old[3].parent = "role"
    plan_for(ctx, recorder, old).apply()
    ctx.calls.clear()

    new = make_steps(["network", "role"])
    removed = plan_for(ctx, recorder, new, retired=old[2:]).teardown()

    assert ctx.verbs("delete") == ["old-b", "old-a", "role", "network"]
    assert [r.step for r in removed] == ["old-b", "old-a", "role", "network"]
    assert ctx.cloud == {}


def test_a_record_no_step_can_delete_stops_teardown_before_it_deletes_anything(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    plan_for(ctx, recorder, make_steps(["network", "gone"])).apply()
    ctx.calls.clear()

    with pytest.raises(ProvisioningError, match="Delete it by hand") as exc:
        plan_for(ctx, recorder, make_steps(["network"])).teardown()

    assert exc.value.step_id == "gone"
    assert ctx.verbs("delete") == []
    assert recorded_steps(recorder) == ["network", "gone"]


def test_adopted_records_of_unknown_steps_are_just_forgotten(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    recorder.save(ResourceRecord("legacy", "fake:vpc", "vpc-1", False, {}))
    removed = plan_for(ctx, recorder, []).teardown()
    assert [r.step for r in removed] == ["legacy"]
    assert recorder.load() == []


# --- progress ----------------------------------------------------------------------------------


def test_progress_events_arrive_in_order_with_index_and_total(
    ctx: Ctx, recorder: MemoryRecorder
) -> None:
    steps = make_steps(["a", "b"])
    events: list[ProgressEvent] = []

    Plan(steps, ctx, recorder).apply(events.append)
    assert [(e.step_id, e.phase, e.index, e.total) for e in events] == [
        ("a", "checking", 1, 2),
        ("a", "creating", 1, 2),
        ("a", "done", 1, 2),
        ("b", "checking", 2, 2),
        ("b", "creating", 2, 2),
        ("b", "done", 2, 2),
    ]
    assert events[2].message == "arn:fake:a"

    events.clear()
    ctx.cloud["b"]["size"] = 5
    Plan(steps, ctx, recorder).apply(events.append)
    assert [(e.step_id, e.phase) for e in events] == [
        ("a", "checking"),
        ("a", "skipped"),
        ("b", "checking"),
        ("b", "updating"),
        ("b", "done"),
    ]

    events.clear()
    ctx.fail = ("a", "check")
    with pytest.raises(ProvisioningError):
        Plan(steps, ctx, recorder).apply(events.append)
    assert [(e.step_id, e.phase) for e in events] == [("a", "checking"), ("a", "failed")]
    assert "injected failure" in events[-1].message

    events.clear()
    ctx.fail = None
    Plan(steps, ctx, recorder).teardown(events.append)
    assert [(e.step_id, e.phase, e.index, e.total) for e in events] == [
        ("b", "deleting", 1, 2),
        ("b", "deleted", 1, 2),
        ("a", "deleting", 2, 2),
        ("a", "deleted", 2, 2),
    ]


# --- the store and the API ---------------------------------------------------------------------


@pytest.fixture
def api_recorder(client: Client) -> Iterator[ApiRecorder]:
    yield ApiRecorder(client, "future-pool")


def rec(step: str, **data: Any) -> ResourceRecord:
    return ResourceRecord(step, f"aws:test:{step}", f"arn:aws:test:::{step}", True, data)


class TestRecordsInTheStore:
    pytestmark = pytest.mark.store

    def test_migrations_create_exactly_the_tables(self, database_url: str) -> None:
        from alembic import command
        from alembic.autogenerate import compare_metadata
        from alembic.config import Config
        from alembic.migration import MigrationContext

        from push_pools.store.db import MIGRATIONS_DIR, Store, upgrade_to_head
        from push_pools.store.tables import Base

        store = Store(database_url)
        try:
            upgrade_to_head(store.engine)
            with store.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                assert compare_metadata(context, Base.metadata) == []

            # 0003 also goes down cleanly, and up again.
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            with store.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.downgrade(config, "0002")
            with store.engine.connect() as connection:
                assert "infrastructure_records" not in connection.dialect.get_table_names(
                    connection
                )
            upgrade_to_head(store.engine)
            with store.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                assert compare_metadata(context, Base.metadata) == []
        finally:
            store.dispose()

    def test_api_recorder_round_trips_records_of_a_pool_that_does_not_exist_yet(
        self, client: Client, api_recorder: ApiRecorder
    ) -> None:
        with pytest.raises(NotFound):
            client.get_work_pool("future-pool")
        records = [rec("iam-user", user_name="pp-x"), rec("cluster", arn="arn:c", tags=["a"])]
        for record in records:
            api_recorder.save(record)

        assert api_recorder.load() == records
        listed = client.list_infrastructure("future-pool")
        assert [r["pool_name"] for r in listed] == ["future-pool"] * 2
        assert set(listed[0]) == {
            "pool_name",
            "step",
            "kind",
            "identifier",
            "created",
            "data",
            "recorded",
            "updated",
        }
        assert ApiRecorder(client, "other-pool").load() == []

        # Creating the pool later changes nothing; deleting it leaves the records for teardown.
        client.create_work_pool({"name": "future-pool", "type": "process"})
        assert api_recorder.load() == records
        client.delete_work_pool("future-pool")
        assert api_recorder.load() == records

    def test_save_upserts_by_step_and_keeps_the_save_order(self, api_recorder: ApiRecorder) -> None:
        for step in ("c", "a", "b"):
            api_recorder.save(rec(step, v=1))
        api_recorder.save(ResourceRecord("c", "aws:test:c", "arn:new", False, {"v": 2}))

        loaded = api_recorder.load()
        assert [r.step for r in loaded] == ["c", "a", "b"]
        assert loaded[0] == ResourceRecord("c", "aws:test:c", "arn:new", False, {"v": 2})

        api_recorder.remove("a")
        api_recorder.save(rec("a", v=3))  # saved anew: it goes last
        assert [r.step for r in api_recorder.load()] == ["c", "b", "a"]

    def test_delete_and_unknown_step(self, client: Client, api_recorder: ApiRecorder) -> None:
        api_recorder.save(rec("a"))
        api_recorder.save(rec("b"))

        client.delete_infrastructure("future-pool", "a")
        assert [r.step for r in api_recorder.load()] == ["b"]
        with pytest.raises(NotFound, match="step 'a'"):
            client.delete_infrastructure("future-pool", "a")
        with pytest.raises(NotFound):
            client.delete_infrastructure("no-such-pool", "b")
        api_recorder.remove("a")  # the Recorder contract: forgetting twice is fine
        assert [r.step for r in api_recorder.load()] == ["b"]

    def test_the_api_refuses_secrets_and_unknown_fields(self, client: Client) -> None:
        body = {"step": "key", "kind": "aws:iam:access-key", "identifier": "AKIA1", "created": True}
        with pytest.raises(InvalidInput, match="secret_access_key"):
            client.save_infrastructure("p", {**body, "data": {"secret_access_key": "s"}})
        with pytest.raises(InvalidInput, match="token"):
            client.save_infrastructure("p", {**body, "data": {"nested": {"token": "t"}}})
        with pytest.raises(InvalidInput):
            client.save_infrastructure("p", {**body, "data": {}, "extra": 1})
        with pytest.raises(InvalidInput):
            client.save_infrastructure("p", {**body, "identifier": "bad\x00id"})
        with pytest.raises(InvalidInput):
            client.save_infrastructure("p", {**body, "data": {"big": "x" * 70_000}})
        with pytest.raises(InvalidInput):
            client.save_infrastructure("not a pool name!", body)
        with pytest.raises(InvalidInput):
            client.save_infrastructure("p", {k: v for k, v in body.items() if k != "step"})
        saved = client.save_infrastructure("p", {**body, "data": {"access_key_id": "AKIA1"}})
        assert saved["data"] == {"access_key_id": "AKIA1"}

    def test_a_plan_provisions_and_tears_down_through_the_server(
        self, client: Client, api_recorder: ApiRecorder
    ) -> None:
        ctx = Ctx()
        adopt(ctx, "network")
        ctx.fail = ("user", "after")
        with pytest.raises(ProvisioningError):
            plan_for(ctx, api_recorder).apply()
        assert [r.step for r in api_recorder.load()] == ["network", "role"]

        ctx.fail = None
        plan_for(ctx, api_recorder).apply()
        assert [(r.step, r.created) for r in api_recorder.load()] == [
            ("network", False),
            ("role", True),
            ("user", True),
            ("cluster", True),
            ("log-group", True),
        ]
        assert ctx.made == Counter(STEP_IDS[1:])

        plan_for(ctx, api_recorder).teardown()
        assert client.list_infrastructure("future-pool") == []
        assert list(ctx.cloud) == ["network"]
