"""The API's request rules as data: the OpenAPI document states them
(``ivr.web.openapi``) and the guard checks every request against the same
data before a handler runs (``check``), so the document and the server cannot
drift apart.

Only the part of JSON Schema 2020-12 (what OpenAPI 3.1 uses) that these
schemas need is checked: ``type``, ``properties``, ``required``,
``additionalProperties: false``, ``pattern``, ``minLength``/``maxLength``,
``minimum``/``maximum``/``exclusiveMinimum``, ``enum``, ``const``, ``anyOf``
and ``format: date``. ``supported`` refuses any other keyword when the route table
is built, so a rule the document states is never silently left unchecked.

Patterns are read as JSON Schema reads them (ECMA-262): a closing ``$`` is the
end of the string. Python's ``$`` also matches before a final newline, so
``^main$`` would let ``main\\n`` through (see ``ivr/names.py``); ``_compiled``
spells it ``\\Z``. Patterns use explicit character classes, never ``\\d``,
``\\w`` or ``\\s``, whose meaning differs between the two dialects.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import lru_cache
from typing import Any

from ivr import names
from ivr.errors import RequestInvalid

Schema = dict[str, Any]

# What str.isspace() calls white space (so str.strip() removes it), as one class both
# dialects read alike; tests/test_openapi.py keeps it equal to Python's own set.
WHITESPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
NONBLANK = f"[^{WHITESPACE}]"      # unanchored: somewhere a character that is not white space

_KEYWORDS = {"type", "properties", "required", "additionalProperties", "pattern", "minLength", "maxLength",
             "minimum", "maximum", "exclusiveMinimum", "enum", "const", "format", "description", "x-message",
             "contentMediaType", "items", "examples", "anyOf"}
_TYPES = {"object": dict, "string": str, "boolean": bool, "array": list}


def whole(rule: names.Rule) -> str:
    """A name rule (full match) as a JSON Schema pattern."""
    return f"^(?:{rule.pattern.pattern})$"


def string(*, pattern: str | None = None, min_length: int | None = None, max_length: int | None = None,
           message: str | None = None, **extra: Any) -> Schema:
    s: Schema = {"type": "string", **extra}
    for key, value in (("pattern", pattern), ("minLength", min_length), ("maxLength", max_length),
                       ("x-message", message)):
        if value is not None:
            s[key] = value
    return s


def obj(props: dict[str, Schema], required: list[str], examples: list[dict[str, Any]] | None = None) -> Schema:
    """An object with exactly these fields: unknown ones are refused by name.
    ``examples`` are for the document's readers and the fuzzer's first tries
    (tests/test_openapi.py checks that each one is valid)."""
    s: Schema = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    if examples:
        s["examples"] = examples
    return s


FLOW_NAME = string(pattern=whole(names.FLOW), description="a flow: " + names.FLOW.what, examples=["main"],
                   message=f"不是流程名 — not a flow name ({names.FLOW.what})")
PROMPT_NAME = string(pattern=whole(names.PROMPT), max_length=120,
                     description="a prompt, its path under prompts/ without .wav: " + names.PROMPT.what,
                     examples=["welcome", "policy/current"],
                     message="录音名须为字母、数字、'-'、'_'，可用 '/' 分级，最长 120 个字符 name: letters, digits, '-', "
                             "'_' and '/' (e.g. policy/heating-2026), at most 120 characters")
NOTE = string(max_length=500, description="a note for the history (at most 500 characters)")
DATE = string(format="date", pattern="^(?:20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}$",
              description="a day (YYYY-MM-DD) from 2000 to 2100, in the hotline's time zone", examples=["2026-11-01"],
              message="日期应为 YYYY-MM-DD（2000 至 2100 年）— a date YYYY-MM-DD from 2000 to 2100")
MONTH = string(pattern="^(?:20[0-9]{2}|2100)-(?:0[1-9]|1[0-2])$", description="a month (YYYY-MM)", examples=["2026-11"],
               message="月份应为 YYYY-MM — a month YYYY-MM")
PBX_NAME = string(pattern="^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="a PBX, as named in queue/lines.yaml",
                  examples=["main"], message="交换机名称无效 — not a PBX name")


def supported(schema: Schema, where: str = "") -> None:
    """``ValueError`` for a keyword ``check`` does not check."""
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise ValueError(f"{where}: schema keywords not checked by ivr.web.schemas: {sorted(unknown)}")
    for name, sub in schema.get("properties", {}).items():
        supported(sub, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        supported(schema["items"], f"{where}[]")
    for i, sub in enumerate(schema.get("anyOf", [])):
        supported(sub, f"{where}|{i}")


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _is_date(value: str) -> bool:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _type_ok(kind: str, value: object) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or \
            (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "null":
        return value is None
    return isinstance(value, _TYPES[kind])


def _fail(schema: Schema, where: str, why: str) -> RequestInvalid:
    return RequestInvalid(schema.get("x-message") or f"'{where}' 不符合要求 — '{where}': {why}")


def _check_string(schema: Schema, value: str, where: str) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise _fail(schema, where, f"at least {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise _fail(schema, where, f"at most {schema['maxLength']} characters")
    if "pattern" in schema and not _compiled(schema["pattern"]).search(value):
        raise _fail(schema, where, f"must match {schema['pattern']}")
    if schema.get("format") == "date" and not _is_date(value):
        raise _fail(schema, where, "must be a date YYYY-MM-DD")


def _check_number(schema: Schema, value: float, where: str) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        raise _fail(schema, where, f"at least {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise _fail(schema, where, f"at most {schema['maximum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        raise _fail(schema, where, f"more than {schema['exclusiveMinimum']}")


def _check_object(schema: Schema, value: dict, where: str) -> dict:
    props = schema.get("properties", {})
    unknown = sorted(set(value) - set(props)) if schema.get("additionalProperties") is False else []
    missing = sorted(set(schema.get("required", ())) - set(value))
    if unknown or missing:
        raise RequestInvalid("; ".join(([f"unknown field(s): {', '.join(unknown)}"] if unknown else []) +
                                ([f"missing field(s): {', '.join(missing)}"] if missing else [])))
    return {k: check(props[k], v, k) if k in props else v for k, v in value.items()}


def check(schema: Schema, value: Any, where: str = "body") -> Any:
    """``value`` if it matches ``schema`` (a whole float where an integer is
    asked for becomes an int), else ``RequestInvalid``."""
    if "anyOf" in schema:
        for sub in schema["anyOf"]:
            try:
                return check(sub, value, where)
            except RequestInvalid:
                pass
        raise _fail(schema, where, "matches none of its forms")
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_type_ok(k, value) for k in kinds):
            raise _fail(schema, where, f"must be {' or '.join(kinds)}")
    if "const" in schema and not _same(value, schema["const"]):
        raise _fail(schema, where, f"must be {schema['const']!r}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        raise _fail(schema, where, f"one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        _check_string(schema, value, where)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(schema, value, where)
        if isinstance(value, float) and kinds and "integer" in kinds and "number" not in kinds:
            value = int(value)
    elif isinstance(value, dict):
        value = _check_object(schema, value, where)
    return value


def _same(a: object, b: object) -> bool:
    """JSON equality: true is not 1."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


# -- answers, for the document (the server does not check its own answers; the fuzz test does) ----------

def answer(schema: Schema | None = None, media: str = "application/json", description: str = "OK",
           status: str = "200") -> dict[str, dict]:
    """A route's success answer: ``Route(answers=answer(...))``."""
    return {status: {"description": description, "content": {media: {"schema": schema or {"type": "string"}}}}}


def fields_of(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """An answer's object: these fields always, ``optional`` sometimes, others may follow."""
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJ: Schema = {"type": "object"}
NULL_STR: Schema = {"type": ["string", "null"]}
NULL_NUM: Schema = {"type": ["number", "null"]}
NULL_INT: Schema = {"type": ["integer", "null"]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def or_empty(schema: Schema) -> Schema:
    """A query parameter whose empty value means "not given" (``?from=&to=`` from a cleared form)."""
    return {"anyOf": [{"const": ""}, schema], "description": schema.get("description", "") + " (empty: not given)",
            **({"x-message": schema["x-message"]} if "x-message" in schema else {})}
