"""The OpenAPI document: valid OpenAPI 3.1, the same document the console
serves, stating the rules the guard checks (from the same data), and every
status a route can answer. Also the answers the fuzzer found wrong
(tests/test_api_contract.py), each fixed at its root."""

import sys

import pytest
from openapi_spec_validator import validate

from ivr import names
from ivr.errors import RequestInvalid
from ivr.web import openapi, schemas
from ivr.web.app import routes
from ivr.web.schemas import check
from tests.test_web_api import PASSWORD, home, web  # noqa: F401  (fixtures)

DOC = openapi.document(routes())


def op(path: str, method: str) -> dict:
    return DOC["paths"][path][method]


def body_schema(path: str, method: str = "post") -> dict:
    return op(path, method)["requestBody"]["content"]["application/json"]["schema"]


def test_the_document_is_valid_openapi_3_1():
    validate(DOC)
    assert DOC["openapi"] == "3.1.0"


async def test_the_console_serves_the_same_document(web):
    c, _ = await web()
    assert await (await c.get("/api/openapi.json")).json() == DOC


def test_aiohttp_path_patterns_become_declared_path_parameters():
    assert "/api/prompts/{name}.wav" in DOC["paths"] and not any(":" in p for p in DOC["paths"])
    [name] = op("/api/prompts/{name}.wav", "get")["parameters"]
    assert name["in"] == "path" and name["required"] and name["schema"]["pattern"] == schemas.whole(names.PROMPT)
    assert openapi.path_of("/a/{x:[a-z]{2}}/{y}") == "/a/{x}/{y}"


def test_the_rules_are_stated():
    [flow] = op("/api/flows/{name}/publish", "post")["parameters"]
    assert flow["schema"]["pattern"] == schemas.whole(names.FLOW)
    level = body_schema("/api/contingency")
    assert level["properties"]["confirm"]["const"] is True
    assert level["properties"]["reason"]["pattern"] == schemas.NONBLANK
    assert level["required"] == ["level", "reason", "confirm"] and level["additionalProperties"] is False
    assert body_schema("/api/prompts/draft")["properties"]["text"]["maxLength"] == 500
    assert body_schema("/api/login")["properties"]["user"]["pattern"] == schemas.whole(names.USER)
    assert op("/api/callbacks", "get")["parameters"][3]["schema"]["enum"] == ["", "open", "closed"]


@pytest.mark.parametrize("path, method, statuses", [
    ("/api/flows/{name}/rollback", "post", {"200", "400", "401", "403", "404", "409", "413", "415", "422"}),
    ("/api/flows/{name}/publish", "post", {"200", "400", "401", "403", "409", "413", "415", "422"}),
    ("/api/contingency/proposal", "post", {"200", "400", "401", "403", "409", "413", "415"}),
    ("/api/login", "post", {"200", "400", "401", "413", "415", "429"}),
    ("/api/prompts", "post", {"200", "400", "401", "403", "413", "415", "422"}),
    ("/api/prompts/draft", "post", {"200", "400", "401", "403", "413", "415", "503"}),
    ("/console/ops", "get", {"200", "302", "401", "403"}),
    ("/api/me", "get", {"200", "401"}),
    ("/healthz", "get", {"200", "401", "503"}),
])
def test_every_status_a_route_can_answer_is_listed(path, method, statuses):
    responses = op(path, method)["responses"]
    assert set(responses) == statuses
    for status, answer in responses.items():
        if status.startswith("4"):
            assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_white_space_class_is_pythons():
    """NONBLANK is read alike by Python and by JSON Schema's dialect, and
    matches exactly the strings str.strip() leaves something of."""
    import re
    space = re.compile(f"[{schemas.WHITESPACE}]")
    every = [chr(i) for i in range(sys.maxunicode + 1)]
    assert {c for c in every if space.fullmatch(c)} == {c for c in every if c.isspace()}


def _schemas_with_examples():
    for r in routes():
        for what, s in [("body", r.body), *r.params.items(), *r.query.items()]:
            for example in (s or {}).get("examples", []):
                yield pytest.param(s, example, id=f"{r.method} {r.path} {what}")


@pytest.mark.parametrize("schema, example", list(_schemas_with_examples()))
def test_the_documents_examples_are_valid(schema, example):
    assert check(schema, example) == example


@pytest.mark.parametrize("schema, value, ok", [
    (schemas.FLOW_NAME, "main", True),
    (schemas.FLOW_NAME, "main\n", False),            # Python's $ would let the newline through
    (schemas.FLOW_NAME, "1main", False),
    (schemas.PROMPT_NAME, "policy/heating-2026", True),
    (schemas.PROMPT_NAME, "../etc/passwd", False),
    (schemas.PROMPT_NAME, "a" * 121, False),
    (schemas.DATE, "2026-02-28", True),
    (schemas.DATE, "2026-02-30", False),
    (schemas.DATE, "1999-12-31", False),
    (schemas.DATE, "20261101", False),               # date.fromisoformat takes it; the document does not
    (schemas.MONTH, "2026-13", False),
    (schemas.or_empty(schemas.DATE), "", True),              # a cleared form field: not given
    (schemas.or_empty(schemas.DATE), "2026-13-01", False),
    ({"type": "integer"}, True, False),               # JSON's true is not 1
    ({"type": "integer"}, 2.0, True),
    ({"type": "number"}, float("nan"), False),
    ({"const": True}, 1, False),
    ({"type": "string", "pattern": schemas.NONBLANK}, "\u3000\t", False),
    ({"type": "string", "pattern": schemas.NONBLANK}, " 原因 ", True),
])
def test_the_checks_read_schemas_as_json_schema_does(schema, value, ok):
    if ok:
        check(schema, value)
    else:
        with pytest.raises(RequestInvalid):
            check(schema, value)


def test_a_whole_float_where_an_integer_is_asked_for_becomes_an_int():
    assert type(check({"type": "object", "properties": {"v": {"type": "integer"}}}, {"v": 2.0})["v"]) is int


def test_a_schema_keyword_the_guard_would_not_check_is_refused_when_the_routes_are_built():
    with pytest.raises(ValueError, match="oneOf"):
        schemas.supported(schemas.obj({"a": {"oneOf": [{"type": "string"}]}}, ["a"]), "test")


# -- what the fuzzer found --------------------------------------------------------------------

async def test_an_undeclared_method_is_a_405_with_its_allow_header(web):
    """The guard turned aiohttp's 405 into a JSON error of its own and dropped
    the Allow header RFC 9110 requires (the shield keeps it)."""
    c, _ = await web("ops")
    for method, path, allow in (("TRACE", "/favicon.ico", "GET"), ("DELETE", "/api/flows", "GET"),
                                ("PATCH", "/api/prompts", "GET,POST")):
        r = await c.request(method, path)
        assert r.status == 405 and (await r.json())["error"], (method, path)
        assert set(r.headers["Allow"].split(",")) == set(allow.split(",")), (method, path)


async def test_a_refused_request_is_400_when_it_breaks_the_document_422_when_its_content_is_refused(web, home):
    c, csrf = await web("boss")
    h = {"X-CSRF-Token": csrf}
    r = await c.post("/api/contingency", json={"level": 2, "reason": "\u3000", "confirm": True}, headers=h)
    assert r.status == 400 and "a reason is required" in (await r.json())["error"]
    r = await c.post("/api/contingency", json={"level": 7, "reason": "x", "confirm": True}, headers=h)
    assert r.status == 422 and "from 0 to 3" in (await r.json())["error"]
    o, csrf = await web("ops")
    r = await o.post("/api/flows/main%0A/check", json={"source": ""}, headers={"X-CSRF-Token": csrf})
    assert r.status == 400 and "not a flow name" in (await r.json())["error"]
    r = await o.post("/api/prompts", data=b"{}", headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
    assert r.status == 415


async def test_the_auditors_page_may_send_empty_filters(web):
    """The page sends ?state=&kind= for "all": the document says so (an enum
    without "" refused what the page sends)."""
    c, _ = await web("audit")
    r = await c.get("/api/callbacks?from=&to=&state=&kind=")
    assert r.status == 200, await r.text()
    assert (await c.get("/api/callbacks?state=gone")).status == 400


async def test_a_body_with_nan_is_not_json(web):
    c, csrf = await web("boss")
    r = await c.post("/api/contingency", data=b'{"level": 1, "reason": "x", "confirm": true, "expires_in_h": NaN}',
                     headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["error"].endswith("the body is not JSON")


async def test_an_unknown_token_is_refused_on_public_routes_as_the_document_says(web):
    c, _ = await web()
    r = await c.get("/healthz", headers={"Authorization": "Bearer ivr_unknown"})
    assert r.status == 401
    assert op("/healthz", "get")["security"] == [{}, {"token": []}]


async def test_a_sign_in_that_breaks_the_document_is_a_400_and_counts_no_failure(web, redis):
    from ivr.redisdb import keys
    c, _ = await web()
    r = await c.post("/api/login", json={"user": "o", "password": PASSWORD})
    assert r.status == 400
    assert [k async for k in redis.scan_iter(match=keys.LOGIN_LIMIT_PREFIX + "*")] == []


async def test_a_multipart_part_with_a_broken_header_is_a_400_not_a_500(web, home):
    """aiohttp's multipart reader raises its own HTTP parser errors (not
    ValueError) for a part's header it cannot read: that was a 500."""
    c, csrf = await web("ops")
    for body in (b"--xx\r\n193--xx--\r\n", b"--xx\r\n" + b"X: y\r\n" * 200 + b"\r\nabc\r\n--xx--\r\n"):
        r = await c.post("/api/prompts", data=body,
                         headers={"X-CSRF-Token": csrf, "Content-Type": "multipart/form-data; boundary=xx"})
        assert r.status == 400 and "multipart" in (await r.json())["error"], body[:20]
