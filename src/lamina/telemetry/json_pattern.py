"""JSON filter patterns: `{ $.level = "ERROR" && ($.latency > 100 || $.retry IS TRUE) }`.

A small recursive-descent parser compiles the body between the braces to a predicate
over the message parsed as JSON (a message that is not JSON never matches):

    expr       := and ('||' and)*
    and        := unary ('&&' unary)*
    unary      := '(' expr ')' | condition
    condition  := selector ('='|'!=') value | selector ('<'|'<='|'>'|'>=') number
                | selector 'IS' ('TRUE'|'FALSE'|'NULL') | selector 'NOT' 'EXISTS'
    selector   := '$' ('.' name | '[' index ']')*

String values may be quoted, and `*` in them is a wildcard, as in CloudWatch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from lamina.telemetry.log_model import invalid_parameter

Predicate = Callable[[Any], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>&&|\|\||!=|>=|<=|=|>|<|\(|\))
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<selector>\$[^\s=!<>()&|]*)
      | (?P<word>[^\s=!<>()&|"]+)
    )""",
    re.VERBOSE,
)
_SELECTOR_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_MISSING = object()


def compile_json_pattern(body: str) -> Callable[[str], bool]:
    parser = _Parser(body)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise parser.error(f"unexpected {parser.peek()!r}")

    def matches(message: str) -> bool:
        try:
            document = orjson.loads(message)
        except orjson.JSONDecodeError:
            return False
        return isinstance(document, dict | list) and predicate(document)

    return matches


class _Parser:
    def __init__(self, body: str) -> None:
        self.body = body
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(body):
            if body[pos:].strip() == "":
                break
            found = _TOKEN.match(body, pos)
            if found is None or found.lastgroup is None:
                raise self.error(f"cannot read {body[pos:].strip()[:20]!r}")
            self.tokens.append((found.lastgroup, found.group(found.lastgroup)))
            pos = found.end()
        self.index = 0

    def error(self, why: str) -> Exception:
        return invalid_parameter(f"Invalid filter pattern {{{self.body}}}: {why}.")

    def peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def take(self, kind: str | None = None) -> str:
        if self.index >= len(self.tokens):
            raise self.error("unexpected end")
        token_kind, text = self.tokens[self.index]
        if kind is not None and token_kind != kind:
            raise self.error(f"expected a {kind}, got {text!r}")
        self.index += 1
        return text

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.peek() == "||":
            self.take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else lambda doc: any(t(doc) for t in terms)

    def conjunction(self) -> Predicate:
        terms = [self.unary()]
        while self.peek() == "&&":
            self.take()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else lambda doc: all(t(doc) for t in terms)

    def unary(self) -> Predicate:
        if self.peek() == "(":
            self.take()
            inner = self.expression()
            if self.take() != ")":
                raise self.error("expected ')'")
            return inner
        return self.condition()

    def condition(self) -> Predicate:
        select = _selector(self.take("selector"), self.error)
        op = self.take()
        if op.upper() == "IS":
            return _is(select, self.take("word").upper(), self.error)
        if op.upper() == "NOT":
            if self.take("word").upper() != "EXISTS":
                raise self.error("expected EXISTS after NOT")
            return lambda doc: select(doc) is _MISSING
        kind, raw = self.tokens[self.index] if self.index < len(self.tokens) else ("", "")
        value = self.take()
        if kind not in ("string", "word"):
            raise self.error(f"expected a value after {op}, got {raw!r}")
        if op in ("=", "!="):
            equal = _equality(value, quoted=kind == "string")
            if op == "=":
                return lambda doc: equal(select(doc))
            return lambda doc: select(doc) is not _MISSING and not equal(select(doc))
        if op in ("<", "<=", ">", ">=") and kind == "word" and _NUMBER.fullmatch(value):
            return _ordering(select, op, float(value))
        raise self.error(f"{op} needs a number, got {value!r}")


def _selector(text: str, error: Callable[[str], Exception]) -> Callable[[Any], Any]:
    steps: list[str | int] = []
    pos = 1
    while pos < len(text):
        step = _SELECTOR_STEP.match(text, pos)
        if step is None:
            raise error(f"bad selector {text!r}")
        steps.append(step.group(1) if step.group(1) is not None else int(step.group(2)))
        pos = step.end()

    def select(doc: Any) -> Any:
        for key in steps:
            in_object = isinstance(key, str) and isinstance(doc, dict) and key in doc
            in_array = isinstance(key, int) and isinstance(doc, list) and key < len(doc)
            if not (in_object or in_array):
                return _MISSING
            doc = doc[key]
        return doc

    return select


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equality(value: str, quoted: bool) -> Predicate:
    if not quoted and _NUMBER.fullmatch(value):
        number = float(value)
        return lambda field: (_is_number(field) and math.isclose(field, number)) or field == value
    if quoted:
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    wildcard = re.compile(".*".join(re.escape(part) for part in value.split("*")), re.DOTALL)
    return lambda field: isinstance(field, str) and wildcard.fullmatch(field) is not None


def _ordering(select: Callable[[Any], Any], op: str, number: float) -> Predicate:
    compare: dict[str, Callable[[float, float], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    test = compare[op]

    def predicate(doc: Any) -> bool:
        field = select(doc)
        return _is_number(field) and test(float(field), number)

    return predicate


def _is(select: Callable[[Any], Any], what: str, error: Callable[[str], Exception]) -> Predicate:
    expected: dict[str, object] = {"TRUE": True, "FALSE": False, "NULL": None}
    if what not in expected:
        raise error(f"IS needs TRUE, FALSE or NULL, got {what!r}")
    target = expected[what]
    return lambda doc: select(doc) is target
