"""A subset of the Logging query language, enough for what clients send to entries:list.

Supported: comparisons `field OP value` with OP one of = != < <= > >= : (has), joined by AND
(or juxtaposition) and OR, NOT / `-`, parentheses; fields are dotted paths whose segments may
be quoted (`labels."run.googleapis.com/execution_name"`); `severity` compares by level and
`timestamp` / `receiveTimestamp` as times. Anything else is INVALID_ARGUMENT, so a client never
silently gets an unfiltered answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tests.emulators.gcp.errors import ApiError

__all__ = ["SEVERITIES", "compile_filter"]

SEVERITIES = [
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
]
_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>!=|<=|>=|=|<|>|:)|(?P<paren>[()])|(?P<dot>\.)'
    r'|(?P<neg>-(?=[A-Za-z"(]))|(?P<word>[^\s()=!<>:."]+))'
)
# After an operator, a bare value runs to the next space or parenthesis (dots, colons and all).
_VALUE = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<word>[^\s()"]+))')
Entry = dict[str, Any]
Predicate = Callable[[Entry], bool]


def compile_filter(text: str) -> Predicate:
    tokens = _tokenize(text)
    if not tokens:
        return lambda entry: True
    parser = _Parser(tokens)
    predicate = parser.expression()
    if parser.position != len(tokens):
        raise _invalid(text)
    return predicate


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        after_op = bool(tokens) and tokens[-1][0] == "op"
        found = (_VALUE if after_op else _TOKEN).match(text, position)
        if not found or found.end() == position:
            raise _invalid(text)
        kind = found.lastgroup or ""
        value = found.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        position = found.end()
    return tokens


def _invalid(text: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", f"Unparseable filter (emulator subset): {text}")


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ApiError("INVALID_ARGUMENT", "Unexpected end of filter.")
        self.position += 1
        return token

    def expression(self) -> Predicate:
        alternatives = [self.conjunction()]
        while self.peek() == ("word", "OR"):
            self.take()
            alternatives.append(self.conjunction())
        if len(alternatives) == 1:
            return alternatives[0]
        return lambda entry: any(p(entry) for p in alternatives)

    def conjunction(self) -> Predicate:
        terms = [self.term()]
        while True:
            token = self.peek()
            if token is None or token == ("paren", ")") or token == ("word", "OR"):
                break
            if token == ("word", "AND"):
                self.take()
            terms.append(self.term())
        if len(terms) == 1:
            return terms[0]
        return lambda entry: all(p(entry) for p in terms)

    def term(self) -> Predicate:
        token = self.peek()
        if token == ("word", "NOT") or (token is not None and token[0] == "neg"):
            self.take()
            inner = self.term()
            return lambda entry: not inner(entry)
        if token == ("paren", "("):
            self.take()
            inner = self.expression()
            if self.take() != ("paren", ")"):
                raise ApiError("INVALID_ARGUMENT", "Unbalanced parentheses in filter.")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        path = [self._segment()]
        while self.peek() == ("dot", "."):
            self.take()
            path.append(self._segment())
        kind, op = self.take()
        if kind != "op":
            raise ApiError("INVALID_ARGUMENT", "Free-text search is not supported in filters.")
        kind, value = self.take()
        if kind not in ("string", "word"):
            raise ApiError("INVALID_ARGUMENT", "A comparison needs a value.")
        return _comparison(path, op, value)

    def _segment(self) -> str:
        kind, value = self.take()
        if kind not in ("word", "string"):
            raise ApiError("INVALID_ARGUMENT", "A field name was expected in the filter.")
        return value


def _comparison(path: list[str], op: str, value: str) -> Predicate:
    field = path[0]

    def extract(entry: Entry) -> Any:
        current: Any = entry
        for segment in path:
            if not isinstance(current, dict) or segment not in current:
                return None
            current = current[segment]
        return current

    def as_comparable(raw: Any) -> Any:
        if field == "severity":
            text = str(raw).upper()
            return SEVERITIES.index(text) if text in SEVERITIES else -1
        if field in ("timestamp", "receiveTimestamp"):
            return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        return str(raw)

    try:
        wanted = as_comparable(value)
    except ValueError as exc:
        raise ApiError("INVALID_ARGUMENT", f"Invalid value in filter: {value}") from exc

    def predicate(entry: Entry) -> bool:
        actual = extract(entry)
        if actual is None:
            return op == "!="
        if op == ":":
            return value.lower() in str(actual).lower()
        have = as_comparable(actual)
        if op == "=":
            return bool(have == wanted)
        if op == "!=":
            return bool(have != wanted)
        if op == "<":
            return bool(have < wanted)
        if op == "<=":
            return bool(have <= wanted)
        if op == ">":
            return bool(have > wanted)
        return bool(have >= wanted)

    return predicate
