"""The status API's OpenAPI description (`<api>/openapi.json`): a valid OpenAPI 3.1 document that describes every
route the app serves, and whose schemas the API's actual answers, successes and errors alike, satisfy, checked
strictly (an object with a field the document does not name fails)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from tests.api.conftest import ADMIN, MakeApp, create, finish
from tests.api.test_status import auth, held
from tests.http.asgi import open_client

pytestmark = pytest.mark.anyio

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def document_of(client: httpx.AsyncClient, path: str = "/api/openapi.json") -> dict[str, Any]:
    response = await client.get(path, headers=auth("ana"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def strict(schema: Any) -> Any:
    """`schema` with every object that lists its properties closed to others."""
    if isinstance(schema, dict):
        closed = {key: strict(value) for key, value in schema.items()}
        if "properties" in closed:
            closed.setdefault("additionalProperties", False)
        return closed
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def conforms(document: dict[str, Any], method: str, template: str, response: httpx.Response) -> None:
    """`response` is one the document names for `method` on `template`, with a body its schema allows."""
    answers = document["paths"][template][method.lower()]["responses"]
    assert str(response.status_code) in answers, (method, template, response.status_code, response.text)
    answer = answers[str(response.status_code)]
    if "$ref" in answer:
        answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    media = response.headers["content-type"].split(";")[0]
    assert media in answer["content"], (method, template, media)
    body = response.json() if media == "application/json" else response.text
    schema = strict({**answer["content"][media]["schema"], "components": copy.deepcopy(document["components"])})
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)


async def test_the_document_is_valid_openapi_3_1(client: httpx.AsyncClient) -> None:
    document = await document_of(client)
    validate(document, cls=OpenAPIV31SpecValidator)
    assert document["openapi"] == "3.1.0"
    assert "servers" not in document  # served at the root: paths are absolute there


async def test_every_route_is_described_and_nothing_else(make_app: MakeApp) -> None:
    app = make_app(api_path="/status")
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/status/")
        for method in (route.methods or set()) - {"HEAD"}
    }
    async with open_client(app) as client:
        document = await document_of(client, "/status/openapi.json")
    described = {(path, method) for path, item in document["paths"].items() for method in item if method in METHODS}
    assert served == described
    assert len(served) == 5


async def test_answers_match_the_document(make_app: MakeApp) -> None:
    """Each answer the API gives, through every operation and its errors, against the document's schema for it."""
    async with open_client(make_app(hooks={"pre-finish": held})) as client:
        document = await document_of(client)
        uploaded, other, open_one = [
            await create(client, user, 3, "filename YS50eHQ=") for user in ["ana", "ben", "ana"]
        ]
        await finish(client, "ana", uploaded)
        one, accept, reject = (
            "/api/uploads/{upload_id}",
            "/api/uploads/{upload_id}/accept",
            "/api/uploads/{upload_id}/reject",
        )
        exchanges = [
            ("GET", "/api/uploads", "/api/uploads", auth("ana"), None, 200),
            ("GET", "/api/uploads", "/api/uploads?limit=1", auth(ADMIN), None, 200),
            ("GET", "/api/uploads", "/api/uploads?state=finished", auth("ana"), None, 400),
            ("GET", "/api/uploads", "/api/uploads?owner=ben", auth("ana"), None, 403),
            ("GET", "/api/uploads", "/api/uploads", {}, None, 401),
            ("GET", one, f"/api/uploads/{uploaded}", auth("ana"), None, 200),
            ("GET", one, f"/api/uploads/{other}", auth("ana"), None, 404),
            ("POST", accept, f"/api/uploads/{uploaded}/accept", auth("ana"), None, 403),
            ("POST", accept, f"/api/uploads/{open_one}/accept", auth(ADMIN), None, 409),
            ("POST", accept, f"/api/uploads/{uploaded}/accept", auth(ADMIN), b'{"reason": "fine"}', 200),
            ("POST", reject, f"/api/uploads/{uploaded}/reject", auth(ADMIN), b"{}", 400),
            ("POST", reject, f"/api/uploads/{uploaded}/reject", auth(ADMIN), b'{"reason": "no"}', 200),
            ("GET", "/api/openapi.json", "/api/openapi.json", auth("ana"), None, 200),
        ]
        for method, template, path, headers, body, status in exchanges:
            response = await client.request(method, path, headers=headers, content=body)
            assert response.status_code == status, (method, path, response.text)
            if template != "/api/openapi.json":  # the document itself: checked by the validator above
                conforms(document, method, template, response)
            else:
                assert response.json() == document
        page = (await client.get("/api/uploads?limit=1", headers=auth(ADMIN))).json()
        assert page["next_cursor"] is not None  # the cursor too was checked against the schema, as a string


async def test_a_mounted_app_names_its_prefix(make_app: MakeApp) -> None:
    """Embedded under /uploads, the document's server is that prefix, and the tus URLs the API gives are below it."""
    parent = Starlette(routes=[Mount("/uploads", app=make_app())])
    async with open_client(parent) as client:
        document = await document_of(client, "/uploads/api/openapi.json")
        validate(document, cls=OpenAPIV31SpecValidator)
        assert document["servers"] == [{"url": "/uploads"}]
        created = await client.post(
            "/uploads/files/", headers=auth("ana") | {"Tus-Resumable": "1.0.0", "Upload-Length": "1"}
        )
        listed = (await client.get("/uploads/api/uploads", headers=auth("ana"))).json()
        assert listed["uploads"][0]["url"] == created.headers["location"]
        assert created.headers["location"].startswith("http://testserver/uploads/files/")
