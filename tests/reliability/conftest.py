"""Reliability tests reuse the service fixtures (tiny checkpoints written by the tests)."""

from tests.service.conftest import checkpoints, models_file  # noqa: F401 - fixtures
