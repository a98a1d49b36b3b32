"""Schemathesis against the live OpenAPI document of a real server: every operation, with an
admin token, valid and invalid inputs. No answer is a 5xx, every error is the JSON envelope,
answers match the schema, and a refused request leaves the store as it was."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from fuzzing import (
    LONG_RUN,
    Target,
    envelope_problem,
    examples,
    report,
    seed_predictions,
    target,
)

pytestmark = pytest.mark.fuzz

EXAMPLES = examples(bounded=6)


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Target]:
    with target(tmp_path_factory.mktemp("openapi-fuzz"), seed=seed_predictions()) as live:
        yield live
        report(request.config, f"schemathesis fuzz: {live.summary()}")


@pytest.fixture(scope="module")
def api_schema(service: Target) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES,
        deterministic=not LONG_RUN,
    )
    return schema


OPERATIONS = [
    ("POST", "/api/v1/predictions"),
    ("POST", "/api/v1/labels"),
    ("POST", "/api/v1/outcomes"),
    ("GET", "/api/v1/slos"),
    ("GET", "/api/v1/slos/{name}/attribution"),
    ("GET", "/api/v1/gate"),
    ("GET", "/api/v1/gate/history"),
    ("POST", "/api/v1/gate/overrides"),
    ("GET", "/api/v1/gate/overrides"),
    ("GET", "/api/v1/alerts"),
    ("POST", "/api/v1/reload"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"),
    ("GET", "/api/v1/pull"),
    ("POST", "/api/v1/pull"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_without_a_fault(
    method: str, path: str, api_schema: schemathesis.BaseSchema, service: Target
) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not LONG_RUN,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answer(case: schemathesis.Case) -> None:
        before = service.fingerprint()
        response = case.call(headers=service.headers(), timeout=60)
        service.sent[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            content_type = ";".join(response.headers.get("content-type", []))
            problem = envelope_problem(content_type, response.text)
            assert problem is None, (response.status_code, problem, response.text)
            assert service.fingerprint() == before, "a refused request changed the store"
        service.keep_admin()

    answer()


def test_the_schema_covers_every_api_route(api_schema: schemathesis.BaseSchema) -> None:
    """The fuzz reaches every operation of the live document, and the document has every
    route of the API."""
    operations = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert operations == set(OPERATIONS)


OPEN = {("GET", "/healthz"), ("GET", "/readyz")}


@pytest.mark.parametrize(
    ("method", "path"),
    [op for op in OPERATIONS if op not in OPEN],
    ids=[f"{m} {p}" for m, p in OPERATIONS if (m, p) not in OPEN],
)
def test_every_other_operation_wants_a_token(service: Target, method: str, path: str) -> None:
    """Without a token each operation but the health checks is a 401 envelope that writes
    nothing."""
    before = service.fingerprint()
    response = httpx.request(method, service.url + path.replace("{token_id}", "1"), timeout=60)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert envelope_problem(response.headers["content-type"], response.text) is None
    assert response.json()["errors"][0]["field"] == "Authorization"
    assert service.fingerprint() == before


def test_the_fuzzed_service_still_works(service: Target) -> None:
    """After the fuzz, a good batch is accepted and counted."""
    service.keep_admin()
    before = service.service.store.counts()["predictions"]
    with service.client() as http:
        response = http.post(
            "/api/v1/predictions",
            json=[{"id": "after-fuzz", "ts": service.clock.now.isoformat(), "status": "ok"}],
        )
        status = http.get("/api/v1/slos")
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert service.service.store.counts()["predictions"] == before + 1
    assert status.status_code == 200
