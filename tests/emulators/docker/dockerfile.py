"""Dockerfile syntax: instructions, flags, exec form, and the builder's word expansion.

Parsing follows the reference: an `# escape=` directive may change the escape character; a line
ending in it continues on the next; comment and empty lines inside a continuation are dropped.
Expansion (`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}`, quotes, escapes) is what the builder
applies to FROM, ARG, ENV, LABEL, WORKDIR, COPY, ADD, USER, EXPOSE, VOLUME and STOPSIGNAL; RUN,
CMD and ENTRYPOINT are left to the shell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DockerfileError", "Instruction", "expand", "expand_words", "parse_dockerfile"]

KEYWORDS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip
_FLAGGED = {"ADD", "COPY", "FROM", "RUN", "HEALTHCHECK"}
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_FLAG = re.compile(r"--([a-zA-Z][a-zA-Z0-9-]*)(?:=(\S*))?$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DockerfileError(Exception):
    """A Dockerfile the builder cannot parse; the message is the builder's."""


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    text: str  # the instruction as written, continuations joined (the build log shows it)
    rest: str  # the arguments after the keyword and its flags
    line: int
    escape: str = "\\"
    flags: dict[str, str] = field(default_factory=dict)
    exec_form: list[str] | None = None  # the JSON-array form of RUN/CMD/ENTRYPOINT/...


def parse_dockerfile(source: str) -> list[Instruction]:
    lines = source.splitlines()
    escape = "\\"
    for line in lines:  # parser directives: only before anything else
        match = _DIRECTIVE.match(line.strip())
        if not match:
            break
        if match[1].lower() == "escape":
            escape = match[2]
    instructions: list[Instruction] = []
    index = 0
    while index < len(lines):
        first = index + 1
        raw = lines[index]
        index += 1
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        text = raw.strip()
        while text.endswith(escape) and index < len(lines):
            text = text[: -len(escape)]
            following = lines[index]
            index += 1
            if not following.strip() or following.lstrip().startswith("#"):
                text += escape  # still continuing
                continue
            # Indented continuations read as one space, as the build log shows them.
            gap = " " if following[:1].isspace() and not text.endswith((" ", "\t")) else ""
            text += gap + following.strip()
        if text.endswith(escape):
            text = text[: -len(escape)]
        instructions.append(_instruction(text.strip(), first, escape))
    return instructions


def _instruction(text: str, line: int, escape: str) -> Instruction:
    keyword, _, rest = text.partition(" ")
    if "\t" in keyword:
        keyword, _, tail = keyword.partition("\t")
        rest = f"{tail} {rest}"
    upper = keyword.upper()
    if upper not in KEYWORDS:
        raise DockerfileError(f"dockerfile parse error line {line}: unknown instruction: {keyword}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    if upper in _FLAGGED:
        while rest.startswith("--"):
            token, _, remainder = rest.partition(" ")
            match = _FLAG.match(token)
            if not match:
                break
            flags[match[1]] = match[2] if match[2] is not None else "true"
            rest = remainder.strip()
    exec_form = None
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            exec_form = value
    return Instruction(upper, text, rest, line, escape, flags, exec_form)


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word, quotes removed and variables expanded."""
    return "".join(_lex(word, env, escape, split=False))


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace, then expand each word."""
    return _lex(text, env, escape, split=True)


def _lex(text: str, env: Mapping[str, str], escape: str, *, split: bool) -> list[str]:
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == escape and i + 1 < len(text):
            current.append(text[i + 1])
            i += 2
        elif char == "'":
            end = text.find("'", i + 1)
            end = len(text) if end < 0 else end
            current.append(text[i + 1 : end])
            i = end + 1
        elif char == '"':
            i = _double_quoted(text, i + 1, env, escape, current)
        elif char == "$":
            value, i = _variable(text, i, env, escape)
            current.append(value)
        elif split and char.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
            continue
        else:
            current.append(char)
            i += 1
        in_word = True
    if in_word or not split:
        words.append("".join(current))
    return words


def _double_quoted(text: str, i: int, env: Mapping[str, str], escape: str, out: list[str]) -> int:
    while i < len(text) and text[i] != '"':
        char = text[i]
        if char == escape and i + 1 < len(text) and text[i + 1] in ('"', "$", escape):
            out.append(text[i + 1])
            i += 2
        elif char == "$":
            value, i = _variable(text, i, env, escape)
            out.append(value)
        else:
            out.append(char)
            i += 1
    return i + 1


def _variable(text: str, i: int, env: Mapping[str, str], escape: str) -> tuple[str, int]:
    """Expand the `$...` at text[i]; the value and the index after it."""
    if text.startswith("${", i):
        depth, end = 1, i + 2
        while end < len(text) and depth:
            if text.startswith("${", end):
                depth, end = depth + 1, end + 2
                continue
            depth -= text[end] == "}"
            end += 1
        body = text[i + 2 : end - 1]
        match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?::?[-+])?", body)
        if not match:
            return "", end
        name, operator, word = match[1], match.group(0)[len(match[1]) :], body[match.end() :]
        value = env.get(name)
        if operator in (":-", "-"):
            unset = value is None or (operator == ":-" and value == "")
            return (expand(word, env, escape) if unset else value or ""), end
        if operator in (":+", "+"):
            set_ = value is not None and (operator == "+" or value != "")
            return (expand(word, env, escape) if set_ else ""), end
        return value or "", end
    match = _NAME.match(text, i + 1)
    if not match:
        return "$", i + 1
    return env.get(match[0], ""), match.end()
