"""Fixtures of the pipeline tests: the fake Vertex AI server and GCS emulator (tests/fakes)."""

from __future__ import annotations

from tests.fakes.fixtures import *  # noqa: F403 - pytest discovers the fixtures by name
