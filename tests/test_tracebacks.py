"""A failed flow's traceback shows its author's frames; the full one is an opt-in."""

from __future__ import annotations

import pytest

from push_pools import flow
from push_pools.tracebacks import FULL_TRACEBACK_ENV, user_traceback


@flow(timeout_seconds=30)  # a timeout runs the call in a thread: more machinery in between
def divide(by: int) -> float:
    return 1 / by


def failure() -> BaseException:
    try:
        divide.run_with_policy({"by": 0})
    except ZeroDivisionError as exc:
        return exc
    raise AssertionError("the flow did not fail")


def frame_files(text: str) -> list[str]:
    return [line.split('"')[1] for line in text.splitlines() if line.strip().startswith("File")]


def test_only_the_authors_frames_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FULL_TRACEBACK_ENV, raising=False)
    text = user_traceback(failure())
    assert frame_files(text) == [__file__, __file__]  # failure() and divide()
    assert "return 1 / by" in text and text.rstrip().endswith("them)")
    assert "ZeroDivisionError: division by zero" in text


def test_the_full_traceback_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FULL_TRACEBACK_ENV, "1")
    files = frame_files(user_traceback(failure()))
    assert any("/push_pools/" in name for name in files)
    assert __file__ in files


def test_output_without_tracebacks_keeps_everything_else() -> None:
    from push_pools.tracebacks import without_tracebacks

    lines = [
        "starting",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "    import big",
        "ValueError: first",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "y.py", line 2, in f',
        "MemoryError",
        "run ended",
    ]
    assert without_tracebacks(lines) == ["starting", "run ended"]
