"""CQL2 filters as SQL of this engine: parsed by the ``cql2`` library, whose SQL output
(PostgreSQL flavoured) is rewritten token by token to SedonaDB's idioms.

* geometry literals (``st_geomfromtext``, ``st_geomfromgeojson``, ``st_makeenvelope``) become
  WKT literals tagged ``ST_SetSRID(…, 4326)``, so they meet the CRS-tagged columns;
* ``properties.<name>`` paths become the column ``<name>``; a property the store lacks
  becomes ``NULL`` (no item has it: the queryables allow additional properties);
* ``strip_accents(x)`` (``ACCENTI``) becomes a ``translate`` of Latin accented letters;
* ``x = SOME(ARRAY[…])`` (``IN``) becomes ``x IN (…)``; ``E'…'`` strings plain literals;
* ``A_CONTAINS``/``A_OVERLAPS`` (``@>``/``@@``) on a JSON-text list of strings become
  tests of the JSON-encoded elements; the other array operators are refused.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import cql2

__all__ = ["MAX_DEPTH", "FilterError", "column_name", "filter_sql", "parse", "too_deep"]

#: Deepest nesting of a filter accepted (every request must stay cheap to plan).
MAX_DEPTH = 64
#: Longest filter accepted, in characters of its JSON or text form.
MAX_LENGTH = 100_000

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<estring>[Ee]'(?:[^'\\]|\\.|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>@>|<@|@@|&&|<=|>=|<>|!=|\|\||[=<>+\-*/%(),\[\]])
    """,
    re.VERBOSE,
)


class FilterError(ValueError):
    """A filter that cannot be parsed or run here (answered with 400)."""


def _accent_table() -> tuple[str, str]:
    src, dst = [], []
    for code in range(0xC0, 0x250):
        ch = chr(code)
        base = unicodedata.normalize("NFD", ch)[0]
        if base != ch and base.isascii() and base.isalpha():
            src.append(ch)
            dst.append(base)
    return "".join(src), "".join(dst)


_ACCENTS = _accent_table()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _unquote_string(token: str) -> str:
    if token[0] in "Ee":
        body = token[2:-1].replace("''", "'")
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), body)
    return token[1:-1].replace("''", "'")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def too_deep(filter: Any) -> bool:
    """Whether a CQL2 JSON filter nests deeper than :data:`MAX_DEPTH` operations."""
    return isinstance(filter, (dict, list)) and _depth(filter) > MAX_DEPTH * 2


def _properties(value: Any, out: set[str]) -> set[str]:
    if isinstance(value, dict):
        if isinstance(value.get("property"), str) and len(value) == 1:
            out.add(value["property"])
        for v in value.values():
            _properties(v, out)
    elif isinstance(value, list):
        for v in value:
            _properties(v, out)
    return out


def column_name(name: str) -> str:
    """A queryable's column: ``properties.x`` is ``x``."""
    return name[len("properties.") :] if name.startswith("properties.") else name


def parse(filter: str | dict[str, Any], lang: str | None) -> cql2.Expr:
    """The filter parsed by ``cql2`` (text or JSON), within the size and depth limits."""
    if isinstance(filter, str):
        if len(filter) > MAX_LENGTH:
            raise FilterError(f"filter longer than {MAX_LENGTH} characters")
        if lang == "cql2-json" or filter.lstrip().startswith("{"):
            try:
                filter = json.loads(filter)
            except ValueError as e:
                raise FilterError(f"filter-lang is cql2-json but the filter is not JSON: {e}") from None
    elif len(json.dumps(filter)) > MAX_LENGTH:
        raise FilterError(f"filter longer than {MAX_LENGTH} characters")
    if too_deep(filter):
        raise FilterError(f"filter nested deeper than {MAX_DEPTH} levels")
    try:
        expr = cql2.Expr(filter)
        tree = expr.to_json()
    except Exception as e:  # cql2 raises plain Exceptions with the parser's message
        raise FilterError(f"invalid CQL2 filter: {' '.join(str(e).split())}") from None
    if _depth(tree) > MAX_DEPTH * 2:
        raise FilterError(f"filter nested deeper than {MAX_DEPTH} levels")
    return expr


def _normalised(value: Any) -> Any:
    """``between`` with its bounds as one list (``[x, [lo, hi]]``, the form of CQL2's drafts that
    clients such as stac-api-validator still send) as the three arguments CQL2 1.0 has."""
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _normalised(v) for k, v in value.items()}
    args = out.get("args")
    if str(out.get("op", "")).lower() == "between" and isinstance(args, list) and len(args) == 2:
        if isinstance(args[1], list) and len(args[1]) == 2:
            out["args"] = [args[0], *args[1]]
    return out


def filter_sql(
    filter: str | dict[str, Any], lang: str | None, columns: dict[str, Any], quote: Callable[[str], str]
) -> str:
    """A SQL predicate of ``filter`` over the store's ``columns``.

    A property the store lacks is NULL in every item (the queryables allow additional
    properties), so a comparison with it matches nothing, as for an item that lacks it.
    """
    if isinstance(filter, dict):
        filter = _normalised(filter)
    expr = parse(filter, lang)
    unknown = {name for name in _properties(expr.to_json(), set()) if column_name(name) not in columns}
    try:
        sql = expr.to_sql()
    except Exception as e:
        raise FilterError(f"filter cannot be expressed in SQL: {' '.join(str(e).split())}") from None
    return _Rewriter(sql, columns, quote, unknown).run()


class _Rewriter:
    def __init__(self, sql: str, columns: dict[str, Any], quote: Callable[[str], str], unknown: set[str]):
        self.tokens = self._tokenize(sql)
        self.columns, self.quote, self.unknown = columns, quote, unknown
        self.i = 0
        self.out: list[str] = []

    @staticmethod
    def _tokenize(sql: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(sql):
            m = _TOKEN.match(sql, pos)
            if m is None:
                raise FilterError(
                    f"filter cannot be run here (unexpected {sql[pos : pos + 20]!r} in its SQL)"
                )
            pos = m.end()
            if m.lastgroup != "space":
                tokens.append((m.lastgroup or "", m.group()))
        return tokens

    def peek(self, offset: int = 0) -> tuple[str, str]:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else ("", "")

    def until_close(self) -> list[tuple[str, str]]:
        """Tokens after ``(`` (at ``self.i``) up to its matching ``)``; moves past it."""
        depth, start = 0, self.i
        while self.i < len(self.tokens):
            value = self.tokens[self.i][1]
            depth += value in ("(", "[")
            depth -= value in (")", "]")
            self.i += 1
            if depth == 0:
                return self.tokens[start + 1 : self.i - 1]
        raise FilterError("filter SQL has unbalanced parentheses")

    def run(self) -> str:
        closers: list[str | None] = []
        while self.i < len(self.tokens):
            kind, value = self.tokens[self.i]
            low = value.lower()
            if kind == "word" and low in ("st_geomfromtext", "st_geomfromgeojson") and self.peek(1)[1] == "(":
                self.i += 1
                inner = self.until_close()
                if len(inner) != 1 or inner[0][0] not in ("string", "estring"):
                    raise FilterError("a geometry literal of the filter is not a string")
                text = _unquote_string(inner[0][1])
                if low == "st_geomfromgeojson":
                    import shapely

                    text = shapely.from_geojson(text).wkt
                self.out.append(f"ST_SetSRID(ST_GeomFromText({_literal(text)}), 4326)")
                continue
            if kind == "word" and low == "st_makeenvelope" and self.peek(1)[1] == "(":
                self.i += 1
                numbers = "".join(v for _, v in self.until_close()).split(",")
                try:
                    w, s, e, n = (float(x) for x in numbers)
                except ValueError:
                    raise FilterError("a BBOX of the filter has 4 numbers") from None
                wkt = f"POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))"
                self.out.append(f"ST_SetSRID(ST_GeomFromText({_literal(wkt)}), 4326)")
                continue
            if kind == "word" and low == "strip_accents" and self.peek(1)[1] == "(":
                self.out.append("translate(")
                self.i += 2
                closers.append(f", {_literal(_ACCENTS[0])}, {_literal(_ACCENTS[1])})")
                continue
            if value == "(":
                closers.append(None)
            elif value == ")":
                closer = closers.pop() if closers else None
                if closer is not None:
                    self.out.append(closer)
                    self.i += 1
                    continue
            if value == "=" and self.peek(1)[1].upper() in ("SOME", "ANY") and self.peek(2)[1] == "(":
                self.i += 2
                inner = self.until_close()
                if not inner or inner[0][1].upper() != "ARRAY":
                    raise FilterError("IN of the filter holds no list")
                self.out.append("IN (" + " ".join(self._rewrite_plain(inner[2:-1])) + ")")
                continue
            if kind == "op" and value in ("@>", "<@", "@@", "&&"):
                self._array(value)
                continue
            self.out.append(self._plain(kind, value))
            self.i += 1
        return " ".join(self.out)

    def _array(self, op: str) -> None:
        if op not in ("@>", "@@") or not self.out or self.peek(1)[1].upper() != "ARRAY":
            raise FilterError(
                "only A_CONTAINS and A_OVERLAPS of a property and a list are supported in filters here"
            )
        column = self.out.pop()
        self.i += 2
        items = self.until_close()
        values = [_unquote_string(v) if k in ("string", "estring") else v for k, v in items if v != ","]
        tests = [f"strpos({column}, {_literal(json.dumps(v))}) > 0" for v in values]
        joiner = " AND " if op == "@>" else " OR "
        self.out.append("(" + (joiner.join(tests) or "TRUE") + ")")

    def _rewrite_plain(self, tokens: list[tuple[str, str]]) -> list[str]:
        return [self._plain(k, v) for k, v in tokens]

    def _plain(self, kind: str, value: str) -> str:
        if kind == "quoted":
            name = value[1:-1].replace('""', '"')
            return "NULL" if name in self.unknown else self.quote(column_name(name))
        if kind == "word" and value.upper() not in _KEYWORDS:
            if value in self.unknown:
                return "NULL"
            if column_name(value) in self.columns:
                return self.quote(column_name(value))
        if kind == "estring":
            return _literal(_unquote_string(value))
        return value


_KEYWORDS = frozenset(
    "AND OR NOT IS NULL LIKE ESCAPE BETWEEN IN CAST AS TIMESTAMP WITH TIME ZONE DATE TRUE FALSE "
    "ARRAY SOME ANY".split()
)
