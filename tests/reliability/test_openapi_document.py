"""docs/openapi.yaml says what the app serves: routes, methods, statuses, shapes, permissions."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import schemathesis
import yaml

import function_app
from tests.unit.test_models import session_json
from uploadsession import errors
from uploadsession.auth import Operation, Principal, authorize
from uploadsession.errors import AccessDenied
from uploadsession.models import DocumentKey, Segment, Session

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "openapi.yaml"
SESSION_PATH = (
    "/{version}/print/printers/{printerId}/jobs/{jobId}/documents/{documentId}/uploadSession"
)
VALUE_PATH = SESSION_PATH + "/$value"
DOCUMENT_PATH = SESSION_PATH.removesuffix("/uploadSession")
CREATE_PATH = DOCUMENT_PATH + "/createUploadSession"
CONTENT_PATH = DOCUMENT_PATH + "/$value"
UPLOAD_URL_PATH = "/{version}/uploadSessions/{sessionRef}"

# DESIGN §2-4: the statuses each operation can answer (304 only on GET; 404 on PUT is the host's
# "no route" for a path such as an empty id), and the host's own refusals 414 and 431.
HOST = {"414", "431"}
STATUSES = {
    ("get", SESSION_PATH): {"200", "304", "400", "401", "403", "404", "503"} | HOST,
    ("put", SESSION_PATH): {"200", "400", "401", "403", "404", "409", "413", "503"} | HOST,
    ("delete", SESSION_PATH): {"204", "400", "401", "403", "404", "503"} | HOST,
    ("post", VALUE_PATH): {
        "201",
        "202",
        "400",
        "401",
        "403",
        "404",
        "409",  # the declared checksum does not match the completed bytes
        "412",
        "413",
        "415",
        "416",
        "428",
        "503",
    }
    | HOST,
}
# DESIGN §2.1, §2.2: the Graph protocol's operations (the uploadUrl needs no bearer token, so
# no 401; its failures are 404 alike).
GRAPH_STATUSES = {
    ("post", CREATE_PATH): {"200", "400", "401", "403", "404", "409", "413", "503"} | HOST,
    ("get", CONTENT_PATH): {"302", "400", "401", "403", "404", "503"} | HOST,
    ("put", UPLOAD_URL_PATH): {
        "201",
        "202",
        "400",
        "403",
        "404",
        "409",
        "412",
        "413",
        "415",
        "416",
    }
    | {"503"}
    | HOST,
    ("get", UPLOAD_URL_PATH): {"200", "403", "404", "503"} | HOST,
    ("delete", UPLOAD_URL_PATH): {"204", "403", "404", "503"} | HOST,
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def registered_http_routes() -> set[tuple[str, str]]:
    """(method, /route) of every HTTP function the app registers, as the host indexes it."""
    app = function_app.app
    recorded = app.functions_bindings
    app.functions_bindings = {}  # get_functions refuses names it returned before
    try:
        functions = app.get_functions()
    finally:
        app.functions_bindings = recorded
    routes = set()
    for function in functions:
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding["type"] == "httpTrigger":
                for method in binding["methods"]:
                    routes.add((method.lower(), "/" + binding["route"]))
    return routes


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace")
    }


def test_the_document_is_valid_openapi_3_1() -> None:
    schema = schemathesis.openapi.from_path(DOCUMENT)
    schema.validate()  # raises on any violation of the OpenAPI 3.1 meta-schema
    assert schema.raw_schema["openapi"].startswith("3.1.")


def test_the_paths_and_methods_are_exactly_the_routes_the_app_registers(
    document: dict[str, Any],
) -> None:
    routes = {route for route in registered_http_routes() if route != ("get", "/health")}
    assert set(operations(document)) - {("get", "/health")} == routes
    assert set(operations(document)) - {("get", "/health")} == set(STATUSES) | set(GRAPH_STATUSES)


def test_every_server_url_ends_in_host_json_route_prefix(document: dict[str, Any]) -> None:
    prefix = json.loads((ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"]
    assert document["servers"]
    for server in document["servers"]:
        assert urlparse(server["url"]).path.strip("/") == prefix, server["url"]


def test_path_parameters_carry_the_id_patterns_the_app_enforces(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        params = {p["name"]: p for p in (resolve(document, p) for p in item.get("parameters", []))}
        assert set(re.findall(r"{(\w+)}", path)) <= set(params)
        if "{printerId}" not in path:
            continue
        patterns = {}
        for name in ("printerId", "jobId", "documentId"):
            assert params[name]["in"] == "path" and params[name]["required"] is True
            patterns[name] = re.compile(resolve(document, params[name]["schema"])["pattern"])
        for value, ok in [
            ("D10B32D8-30ED-4C72-A69B-A7155F81947D", True),
            ("d10b32d8", False),
            ("{d10b32d8-30ed-4c72-a69b-a7155f81947d}", False),
        ]:
            assert bool(patterns["printerId"].search(value)) is ok
            assert bool(patterns["documentId"].search(value)) is ok
            assert _key_parses(value, "job", value) is ok
        for job, ok in [
            ("a" * 64, True),
            ("a" * 65, False),
            ("a-B-9", True),
            ("a_b", False),
            ("a/b", False),
            ("", False),
        ]:
            assert bool(patterns["jobId"].search(job)) is ok
            assert (
                _key_parses(
                    "d10b32d8-30ed-4c72-a69b-a7155f81947d",
                    job,
                    "d10b32d8-30ed-4c72-a69b-a7155f81947d",
                )
                is ok
            )


def _key_parses(printer: str, job: str, document: str) -> bool:
    try:
        DocumentKey.parse("72f988bf-86f1-41af-91ab-2d7cd011db47", printer, job, document)
    except errors.InvalidRequest:
        return False
    return True


@pytest.mark.parametrize(("method", "path"), sorted(STATUSES))
def test_each_operation_documents_every_status_the_design_defines(
    document: dict[str, Any],
    method: str,
    path: str,
) -> None:
    operation = operations(document)[(method, path)]
    responses = operation["responses"]
    assert set(responses) == STATUSES[(method, path)]
    for status, response in responses.items():
        response = resolve(document, response)
        headers = {name.lower(): resolve(document, h) for name, h in response["headers"].items()}
        assert headers["request-id"]["required"] and headers["client-request-id"]["required"]
        content = response.get("content", {})
        if int(status) >= 400:
            assert list(content) == ["application/json"]
            assert resolve(document, content["application/json"]["schema"]) == resolve(
                document, {"$ref": "#/components/schemas/error"}
            )
        elif status in ("200", "201", "202"):
            assert headers["etag"]["required"]
            assert content["application/json"]["schema"] == {
                "$ref": "#/components/schemas/printUploadSession"
            }
        else:  # 204, 304: no body
            assert content == {}
        if status == "401":
            assert headers["www-authenticate"]["required"]
        if status == "503":
            assert headers["retry-after"]["required"]
        if status == "416":
            assert headers["content-range"]["required"]
        if status == "304":
            assert headers["etag"]["required"]


def test_the_documented_headers_of_each_operation(document: dict[str, Any]) -> None:
    ops = operations(document)

    def header_names(method: str, path: str) -> set[str]:
        item = document["paths"][path]
        params = [*item["parameters"], *ops[(method, path)].get("parameters", [])]
        return {p["name"] for p in (resolve(document, p) for p in params) if p["in"] == "header"}

    assert header_names("post", VALUE_PATH) == {
        "Content-Range",
        "If-Match",
        "Content-MD5",
        "Upload-Checksum",
        "client-request-id",
    }
    assert header_names("get", SESSION_PATH) == {"If-None-Match", "client-request-id"}
    post = ops[("post", VALUE_PATH)]
    assert list(post["requestBody"]["content"]) == ["application/octet-stream"]
    required = {p["name"] for p in post["parameters"] if p.get("required")}
    assert required == {"Content-Range", "If-Match"}


def test_the_session_schema_has_the_property_order_the_app_renders(
    document: dict[str, Any],
) -> None:
    schema = document["components"]["schemas"]["printUploadSession"]
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    session = Session(
        key=DocumentKey.parse(
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "d10b32d8-30ed-4c72-a69b-a7155f81947d",
            "1",
            "d10b32d8-30ed-4c72-a69b-a7155f81947e",
        ),
        id="d10b32d8-30ed-4c72-a69b-a7155f81947f",
        size=10,
        content_type="text/plain",
        document_name="a.txt",
        app_id="app",
        user_id="user",
        created=now,
        expires=now,
        segments=(Segment(2, 3, b"\0" * 16),),
        checksum=1,  # optional, appended once known
    )
    rendered = session_json(session)
    assert list(schema["properties"]) == list(rendered) == [*schema["required"], "checksum"]
    byte_range = document["components"]["schemas"]["byteRange"]["properties"]
    assert byte_range["start"]["type"] == byte_range["end"]["type"] == "string"
    assert rendered["missingRanges"] == [{"start": "0", "end": "1"}, {"start": "4", "end": "9"}]
    example = document["components"]["examples"]["session"]["value"]
    assert list(example) == list(rendered)


def test_the_error_envelope_lists_exactly_the_codes_the_app_uses(
    document: dict[str, Any],
) -> None:
    error = document["components"]["schemas"]["error"]["properties"]["error"]
    assert error["required"] == ["code", "message", "innerError"]
    assert error["properties"]["innerError"]["required"] == [
        "date",
        "request-id",
        "client-request-id",
    ]
    app_codes = {cls.code for cls in _subclasses(errors.ApiError)}
    assert set(error["properties"]["code"]["enum"]) == app_codes


def _subclasses(cls: type[errors.ApiError]) -> list[type[errors.ApiError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


DELEGATED = [
    "PrintJob.Read",
    "PrintJob.ReadWrite",
    "PrintJob.Read.All",
    "PrintJob.ReadWrite.All",
    "Printer.Read.All",
    "Printer.ReadWrite.All",
    "Printer.FullControl.All",
]


@pytest.mark.parametrize(("method", "path"), sorted(STATUSES))
def test_the_documented_scopes_are_exactly_the_permission_table(
    document: dict[str, Any],
    method: str,
    path: str,
) -> None:
    """Every documented alternative is accepted by the app, and every pair of permissions the
    document does not list is refused."""
    operation_kind = Operation.READ if method == "get" else Operation.WRITE
    schemes = document["components"]["securitySchemes"]
    alternatives = operations(document)[(method, path)]["security"]
    for scheme, delegated in (("entraDelegated", True), ("entraApplication", False)):
        flows = schemes[scheme]["flows"]
        universe = sorted({s for flow in flows.values() for s in flow["scopes"]})
        if delegated:
            assert universe == sorted(DELEGATED)
        documented = {frozenset(alt[scheme]) for alt in alternatives if scheme in alt}
        assert documented and all(len(alt) == 2 for alt in documented)
        for pair in itertools.combinations(universe, 2):
            principal = Principal(
                "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "app",
                "user" if delegated else None,
                delegated,
                frozenset(pair),
            )
            try:
                authorize(principal, operation_kind)
                accepted = True
            except AccessDenied:
                accepted = False
            assert accepted is (frozenset(pair) in documented), (scheme, pair)


@pytest.mark.parametrize(("method", "path"), sorted(GRAPH_STATUSES))
def test_each_graph_operation_documents_its_statuses_and_shapes(
    document: dict[str, Any], method: str, path: str
) -> None:
    operation = operations(document)[(method, path)]
    assert set(operation["responses"]) == GRAPH_STATUSES[(method, path)]
    for status, response in operation["responses"].items():
        response = resolve(document, response)
        headers = {name.lower(): resolve(document, h) for name, h in response["headers"].items()}
        assert headers["request-id"]["required"] and headers["client-request-id"]["required"]
        if int(status) >= 400:
            assert list(response["content"]) == ["application/json"]
    if path == UPLOAD_URL_PATH:
        assert operation["security"] == []  # the capability token alone authorizes


def test_the_graph_wire_shapes_match_what_the_app_renders(document: dict[str, Any]) -> None:
    from uploadsession.wire import print_document_json, upload_session_json

    schemas = document["components"]["schemas"]
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    key = DocumentKey.parse(
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "d10b32d8-30ed-4c72-a69b-a7155f81947d",
        "1",
        "d10b32d8-30ed-4c72-a69b-a7155f81947e",
    )
    session = Session(key, "s", 10, "text/plain", "a.txt", "app", None, now, now)
    progress = json.loads(upload_session_json(session, None).body())
    assert list(progress) == schemas["uploadSessionProgress"]["required"]
    assert progress["nextExpectedRanges"] == ["0-9"]
    with_url = json.loads(
        upload_session_json(session, "https://h/v1.0/uploadSessions/x?tempauthtoken=t").body()
    )
    assert list(with_url) == schemas["uploadSession"]["required"]
    printed = json.loads(print_document_json(session, now - timedelta(seconds=1)).body())
    assert list(printed) == schemas["printDocument"]["required"]
