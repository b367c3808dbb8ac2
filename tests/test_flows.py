"""Behaviour of `@flow` users notice: calling, parameters, schema, retries, timeouts, prints."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest
from pydantic import BaseModel

from push_pools.errors import InvalidInput, PushPoolsError
from push_pools.flows import Flow, FlowTimeout, flow, is_flow

ROOT = Path(__file__).resolve().parents[1]


class Item(BaseModel):
    sku: str
    quantity: int = 1


class Unserialisable:
    """A default value that JSON cannot represent."""


@flow
def add(a: int, b: int = 10) -> int:
    return a + b


@flow
def order(
    item: Item,
    counts: list[int],
    note: Optional[str] = None,  # noqa: UP045 - Optional is what users write and must work
    repeat: int = 2,
    anything=None,
    thing: Unserialisable = Unserialisable(),
) -> dict[str, Any]:
    return {"item": item, "counts": counts, "note": note, "repeat": repeat}


# --- calling ----------------------------------------------------------------------------------


def test_calling_a_flow_runs_the_function_and_returns_its_value() -> None:
    assert add(1, 2) == 3
    assert add(a=5) == 15


def test_type_hints_coerce_arguments_when_called() -> None:
    assert add("3", b="4") == 7  # type: ignore[arg-type]


def test_wrong_type_is_rejected_with_a_message_naming_the_parameter() -> None:
    with pytest.raises(InvalidInput) as caught:
        add("abc")  # type: ignore[arg-type]
    message = str(caught.value)
    assert "parameter 'a'" in message
    assert "expected integer" in message
    assert "'abc'" in message


def test_bad_call_arguments_raise_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="add"):
        add(1, 2, 3)  # type: ignore[call-arg]


def test_async_functions_are_awaited() -> None:
    @flow
    async def double(x: int) -> int:
        return x * 2

    assert double("4") == 8  # type: ignore[arg-type, comparison-overlap]


# --- parameters -------------------------------------------------------------------------------


def test_validate_parameters_coerces_and_returns_only_given_parameters() -> None:
    validated = order.validate_parameters(
        {"item": {"sku": "A-1", "quantity": "3"}, "counts": ["1", 2]}
    )
    assert validated == {"item": Item(sku="A-1", quantity=3), "counts": [1, 2]}
    # Nested models reach the function as models, not dicts.
    assert isinstance(validated["item"], Item)
    assert add.validate_parameters({"a": "3"}) == {"a": 3}


def test_validate_parameters_rejects_wrong_types_for_every_bad_parameter() -> None:
    with pytest.raises(InvalidInput) as caught:
        order.validate_parameters({"item": {"sku": "A-1", "quantity": "many"}, "counts": ["x"]})
    message = str(caught.value)
    assert "parameter 'item.quantity': expected integer, got 'many'" in message
    assert "parameter 'counts[0]': expected integer, got 'x'" in message


def test_unknown_parameter_is_rejected_and_accepted_ones_listed() -> None:
    with pytest.raises(InvalidInput) as caught:
        add.validate_parameters({"a": 1, "c": 2})
    message = str(caught.value)
    assert "'c'" in message
    assert "a, b" in message


def test_missing_required_parameter_is_rejected_by_name() -> None:
    with pytest.raises(InvalidInput, match="missing required parameter 'a'"):
        add.validate_parameters({"b": 1})


def test_parameters_must_be_a_mapping() -> None:
    with pytest.raises(InvalidInput, match="mapping"):
        add.validate_parameters([1, 2])  # type: ignore[arg-type]


def test_parameter_schema_has_types_defaults_and_required_and_is_json() -> None:
    schema = order.parameter_schema()
    json.dumps(schema)  # what the API stores and sends to the UI
    assert schema["type"] == "object"
    assert schema["required"] == ["item", "counts"]
    properties = schema["properties"]
    assert list(properties) == ["item", "counts", "note", "repeat", "anything", "thing"]
    item_ref = properties["item"]["$ref"].rsplit("/", 1)[-1]
    assert schema["$defs"][item_ref]["properties"]["quantity"]["type"] == "integer"
    assert properties["counts"]["type"] == "array"
    assert properties["counts"]["items"] == {"type": "integer"}
    assert {"type": "string"} in properties["note"]["anyOf"]
    assert {"type": "null"} in properties["note"]["anyOf"]
    assert properties["note"]["default"] is None
    assert properties["repeat"] == {"type": "integer", "default": 2, "title": "repeat"}
    # Untyped: no type constraint at all.
    assert "type" not in properties["anything"]
    # A default JSON cannot hold is left out rather than breaking the schema.
    assert "default" not in properties["thing"]


def test_parameter_schema_of_a_flow_without_parameters() -> None:
    @flow
    def nothing() -> None:
        pass

    schema = nothing.parameter_schema()
    assert schema["properties"] == {}
    assert schema["required"] == []


def test_parameter_names_that_clash_with_pydantic_still_work() -> None:
    @flow
    def clashing(json: int, schema: str = "x", model_config: int = 1) -> int:
        return json

    assert clashing.validate_parameters({"json": "2", "model_config": "3"}) == {
        "json": 2,
        "model_config": 3,
    }
    assert set(clashing.parameter_schema()["properties"]) == {"json", "schema", "model_config"}


def test_run_with_policy_passes_positional_only_keyword_only_and_var_parameters() -> None:
    @flow
    def signature(a: int, /, b: int, *rest: int, c: int, **extra: int) -> tuple[Any, ...]:
        return a, b, rest, c, extra

    parameters = signature.validate_parameters(
        {"a": "1", "b": 2, "rest": ["3", 4], "c": 5, "extra": {"d": "6"}}
    )
    assert signature.run_with_policy(parameters) == (1, 2, (3, 4), 5, {"d": 6})
    assert signature(1, 2, 3, c=4, d=5) == (1, 2, (3,), 4, {"d": 5})


# --- retries ----------------------------------------------------------------------------------


def test_retries_run_again_until_success_and_report_each_retry() -> None:
    calls: list[int] = []
    retried: list[tuple[int, BaseException]] = []

    @flow(retries=2, retry_delay_seconds=0.05)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"failure {len(calls)}")
        return "done"

    started = time.monotonic()
    result = flaky.run_with_policy({}, on_retry=lambda n, exc: retried.append((n, exc)))
    assert result == "done"
    assert len(calls) == 3
    assert [(n, str(exc)) for n, exc in retried] == [(1, "failure 1"), (2, "failure 2")]
    assert time.monotonic() - started >= 0.1  # two delays


def test_exhausted_retries_reraise_the_original_exception() -> None:
    raised: list[ValueError] = []

    @flow(retries=1)
    def always_fails() -> None:
        raised.append(ValueError(f"attempt {len(raised) + 1}"))
        raise raised[-1]

    with pytest.raises(ValueError) as caught:
        always_fails()
    assert len(raised) == 2
    assert caught.value is raised[-1]


def test_no_retries_by_default() -> None:
    calls: list[int] = []

    @flow
    def fails() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fails()
    assert calls == [1]


# --- timeouts ---------------------------------------------------------------------------------


@flow(timeout_seconds=0.2)
def sleeps() -> None:
    time.sleep(2)


def test_timeout_raises_flow_timeout_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(FlowTimeout, match=r"flow 'sleeps' exceeded its timeout of 0\.2s"):
        sleeps()
    assert time.monotonic() - started < 1.5
    assert isinstance(FlowTimeout("x"), PushPoolsError)


def test_timeout_works_when_called_from_another_thread() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sleeps.run_with_policy({})
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=run)
    worker.start()
    worker.join(5)
    assert time.monotonic() - started < 1.5
    assert len(errors) == 1 and isinstance(errors[0], FlowTimeout)


def test_a_timed_out_attempt_counts_as_a_retry() -> None:
    attempts: list[int] = []
    retried: list[BaseException] = []

    @flow(retries=1, timeout_seconds=0.2)
    def slow_then_fast() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            time.sleep(2)
        return "ok"

    assert slow_then_fast.run_with_policy({}, on_retry=lambda n, exc: retried.append(exc)) == "ok"
    assert len(retried) == 1 and isinstance(retried[0], FlowTimeout)


def test_a_flow_with_a_timeout_still_returns_values_and_raises_errors() -> None:
    @flow(timeout_seconds=5)
    def quick(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x + 1

    assert quick(1) == 2
    with pytest.raises(ValueError, match="negative"):
        quick(-1)


# --- log_prints -------------------------------------------------------------------------------


def test_log_prints_sends_lines_to_the_sink_and_still_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @flow(log_prints=True)
    def chatty() -> int:
        print("hello")
        print("two", "words", end="")
        print(" joined")
        thread = threading.Thread(target=print, args=("from a thread",))
        thread.start()
        thread.join()
        return 1

    stdout_before = sys.stdout
    lines: list[str] = []
    assert chatty.run_with_policy({}, print_sink=lines.append) == 1
    assert sys.stdout is stdout_before
    assert lines == ["hello", "two words joined", "from a thread"]
    assert capsys.readouterr().out == "hello\ntwo words joined\nfrom a thread\n"


def test_log_prints_restores_stdout_when_the_flow_fails() -> None:
    @flow(log_prints=True, timeout_seconds=5)
    def fails() -> None:
        print("about to fail")
        raise RuntimeError("boom")

    stdout_before = sys.stdout
    lines: list[str] = []
    with pytest.raises(RuntimeError):
        fails.run_with_policy({}, print_sink=lines.append)
    assert sys.stdout is stdout_before
    assert lines == ["about to fail"]


def test_log_prints_without_sink_logs_to_the_flow_run_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @flow(log_prints=True)
    def chatty() -> None:
        print("to the log")

    with caplog.at_level(logging.INFO, logger="push_pools.flow_run"):
        chatty()
    assert [r.getMessage() for r in caplog.records if r.name == "push_pools.flow_run"] == [
        "to the log"
    ]


def test_prints_are_not_captured_without_log_prints() -> None:
    @flow
    def quiet() -> None:
        print("just stdout")

    lines: list[str] = []
    quiet.run_with_policy({}, print_sink=lines.append)
    assert lines == []


def test_concurrent_flows_each_get_their_own_prints_and_stdout_is_restored() -> None:
    both_printing = threading.Barrier(2, timeout=5)
    first_done = threading.Event()

    def make(label: str) -> Flow[[], None]:
        @flow(name=label, log_prints=True)
        def chatty() -> None:
            print(f"{label} before")
            both_printing.wait()
            if label == "second":
                # Finish last, so the tees are removed in a different order than installed.
                first_done.wait(5)
            print(f"{label} after")

        return chatty

    stdout_before = sys.stdout
    lines: dict[str, list[str]] = {"first": [], "second": []}

    def run(label: str) -> None:
        make(label).run_with_policy({}, print_sink=lines[label].append)
        if label == "first":
            first_done.set()

    threads = [threading.Thread(target=run, args=(label,)) for label in lines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert lines == {
        "first": ["first before", "first after"],
        "second": ["second before", "second after"],
    }
    assert sys.stdout is stdout_before


# --- options and identity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"retries": 1.5},
        {"retries": True},
        {"retry_delay_seconds": -1},
        {"timeout_seconds": 0},
        {"timeout_seconds": -5},
        {"log_prints": "yes"},
        {"name": ""},
        {"name": "a/b"},
    ],
)
def test_invalid_decorator_options_are_rejected(options: dict[str, Any]) -> None:
    def fn() -> None:
        pass

    with pytest.raises(InvalidInput):
        flow(**options)(fn)
    with pytest.raises(InvalidInput):
        add.with_options(**options)


def test_passing_the_name_positionally_gives_a_helpful_error() -> None:
    with pytest.raises(InvalidInput, match="name="):
        flow("my-flow")  # type: ignore[call-overload]


def test_name_defaults_to_the_function_name_with_dashes() -> None:
    @flow
    def my_flow() -> None:
        """Load the data.

        Details nobody needs in a listing.
        """

    assert my_flow.name == "my-flow"
    assert my_flow.description == "Load the data."
    # Looks like the function it wraps.
    assert my_flow.__name__ == "my_flow"
    assert my_flow.__doc__ is not None and my_flow.__doc__.startswith("Load the data.")
    assert isinstance(my_flow, Flow)
    assert is_flow(my_flow)
    assert not is_flow(my_flow.fn)
    assert not is_flow(Flow)


def test_decorator_options_are_applied() -> None:
    @flow(
        name="nightly-etl",
        description="Loads everything.",
        log_prints=True,
        retries=3,
        retry_delay_seconds=1.5,
        timeout_seconds=60,
    )
    def etl() -> None:
        """Ignored, as the description is given."""

    assert etl.name == "nightly-etl"
    assert etl.description == "Loads everything."
    assert (etl.log_prints, etl.retries, etl.retry_delay_seconds, etl.timeout_seconds) == (
        True,
        3,
        1.5,
        60,
    )


def test_with_options_returns_a_changed_copy() -> None:
    changed = add.with_options(retries=2, name="adder")
    assert (changed.name, changed.retries) == ("adder", 2)
    assert (add.name, add.retries) == ("add", 0)
    assert changed(1) == 11
    with pytest.raises(InvalidInput, match="retry"):
        add.with_options(retry=2)


def test_importing_the_module_does_not_import_pydantic() -> None:
    code = (
        "import sys, push_pools; before = set(sys.modules); import push_pools.flows; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] == 'pydantic'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
