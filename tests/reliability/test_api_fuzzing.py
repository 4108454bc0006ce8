"""Schemathesis against the service's own OpenAPI schema: no 5xx, every response documented,
requests that break the schema refused with a 4xx.

Runs against a real uvicorn server (models loaded) so uploads go through the same HTTP stack
as in production. Each operation gets up to FUZZ_EXAMPLES generated requests (override with
SEGMENTER_FUZZ_EXAMPLES for a longer run; docs/reliability.md has the figures).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from service.main import create_app
from tests.service.conftest import make_settings, standard_entries, write_models
from tests.service.live_server import LiveServer

FUZZ_EXAMPLES = int(os.environ.get("SEGMENTER_FUZZ_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def live_service(checkpoints, tmp_path_factory):
    models = write_models(tmp_path_factory.mktemp("fuzz"), standard_entries(checkpoints, max_batch_size=4))
    app = create_app(make_settings(models, fail_fast=True, max_upload_bytes=2_000_000, max_image_pixels=4_000_000))
    with LiveServer(app) as server:
        yield server


def test_every_operation_answers_documented_non_5xx_responses(live_service):
    schema = schemathesis.openapi.from_url(live_service.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /segment", "GET /models", "GET /readyz"}
    statuses: dict[int, int] = {}
    # positive: schema-valid requests; negative: requests that break the schema (must get a 4xx).
    # Only POST /segment takes input, so only it can be sent schema-breaking requests.
    plan = [(op, GenerationMode.POSITIVE) for op in operations]
    plan += [(op, GenerationMode.NEGATIVE) for op in operations if op.path == "/segment"]
    for operation, mode in plan:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def fuzz(case):
            # A schema cannot say "the bytes must be a decodable image", so schema-valid uploads
            # are rightly refused with 400/415; every other check stays on (no 5xx, documented
            # status codes, content types and response schemas).
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        fuzz()
    print(f"\nfuzzing: {sum(statuses.values())} requests over {len(operations)} operations, statuses {statuses}")
    assert sum(statuses.values()) >= FUZZ_EXAMPLES  # the generator really ran
