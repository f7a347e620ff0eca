"""`$filter` as SharePoint REST reads it on lists and items: comparisons (`eq`, `ne`, `gt`, `ge`,
`lt`, `le`) of a field with a literal (`'text'` with `''` for a quote, numbers, `true`/`false`,
`null`, `datetime'…'`), `and`, `or`, `not`, parentheses, `startswith(Field,'x')` and
`substringof('x',Field)`. A field the entity does not have, or anything else, is refused with
SharePoint's own words."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from . import errors
from .errors import SharePointError
from .subscriptions import parse_sharepoint_time

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<datetime>datetime'[^']*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_/]*))"
)
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and b is not None and a > b,
    "ge": lambda a, b: a is not None and b is not None and a >= b,
    "lt": lambda a, b: a is not None and b is not None and a < b,
    "le": lambda a, b: a is not None and b is not None and a <= b,
}
Predicate = Callable[[Mapping[str, Any]], bool]


def invalid() -> SharePointError:
    return SharePointError(400, errors.INVALID_CLIENT_QUERY, "The expression is not valid.")


def unknown_field(name: str) -> SharePointError:
    message = f"The field or property '{name}' does not exist."
    return SharePointError(400, errors.INVALID_CLIENT_QUERY, message)


def parse(expression: str, fields: set[str]) -> Predicate:
    """The entities `expression` keeps; `fields`: the names an entity may be filtered on."""
    tokens = _tokens(expression)
    parser = _Parser(tokens, {name.lower(): name for name in fields})
    predicate = parser.expression()
    if parser.position != len(tokens):
        raise invalid()
    return predicate


def _tokens(expression: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise invalid()
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], fields: dict[str, str]) -> None:
        self.tokens = tokens
        self.fields = fields
        self.position = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise invalid()
        self.position += 1
        return token

    def expect(self, value: str) -> None:
        if self.take()[1] != value:
            raise invalid()

    def expression(self) -> Predicate:
        left = self.conjunction()
        while (token := self.peek()) is not None and token[1].lower() == "or":
            self.take()
            right = self.conjunction()
            left = (lambda a, b: lambda entity: a(entity) or b(entity))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.unary()
        while (token := self.peek()) is not None and token[1].lower() == "and":
            self.take()
            right = self.unary()
            left = (lambda a, b: lambda entity: a(entity) and b(entity))(left, right)
        return left

    def unary(self) -> Predicate:
        token = self.peek()
        if token is not None and token[1].lower() == "not":
            self.take()
            inner = self.unary()
            return lambda entity: not inner(entity)
        if token is not None and token[1] == "(":
            self.take()
            inner = self.expression()
            self.expect(")")
            return inner
        if token is not None and token[1].lower() in ("startswith", "substringof"):
            return self.function()
        return self.comparison()

    def function(self) -> Predicate:
        name = self.take()[1].lower()
        self.expect("(")
        first, _ = self.operand()
        self.expect(",")
        second, _ = self.operand()
        self.expect(")")
        if name == "startswith":
            return lambda entity: str(first(entity) or "").startswith(str(second(entity) or ""))
        return lambda entity: str(first(entity) or "") in str(second(entity) or "")

    def comparison(self) -> Predicate:
        left, left_is_field = self.operand()
        kind, operator = self.take()
        if kind != "word" or operator.lower() not in _COMPARISONS:
            raise invalid()
        right, _ = self.operand()
        compare = _COMPARISONS[operator.lower()]
        if not left_is_field:
            raise invalid()
        return lambda entity: compare(_comparable(left(entity)), _comparable(right(entity)))

    def operand(self) -> tuple[Callable[[Mapping[str, Any]], Any], bool]:
        kind, value = self.take()
        if kind == "string":
            text = value[1:-1].replace("''", "'")
            return (lambda entity: text), False
        if kind == "datetime":
            moment = _datetime(value[len("datetime'") : -1])
            return (lambda entity: moment), False
        if kind == "number":
            number = float(value) if "." in value else int(value)
            return (lambda entity: number), False
        if kind == "word" and value.lower() in ("true", "false", "null"):
            literal = {"true": True, "false": False, "null": None}[value.lower()]
            return (lambda entity: literal), False
        if kind == "word":
            name = self.fields.get(value.lower())
            if name is None:
                raise unknown_field(value)
            return (lambda entity: entity.get(name)), True
        raise invalid()


def _datetime(value: str) -> datetime:
    try:
        return parse_sharepoint_time(value)
    except SharePointError:
        raise invalid() from None


def _comparable(value: Any) -> Any:
    """Dates written as text compare as dates; everything else as it is."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T[\d:.]+Z?", value):
        try:
            return parse_sharepoint_time(value)
        except SharePointError:
            return value
    return value
