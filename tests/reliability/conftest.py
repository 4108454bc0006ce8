"""Reliability tests reuse the service fixtures (tiny checkpoints written by the tests)."""

from tests.service.conftest import checkpoints  # noqa: F401 - a fixture
