"""Fixtures for registry tests: the fakes (tests/fakes) and a factory of either backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from components.registry import Registry, RegistrySettings, open_registry
from tests.fakes.fixtures import *  # noqa: F403  (fake_vertex, gcs_emulator, vertex_env)
from tests.fakes.fixtures import VertexTestEnv


@pytest.fixture(params=["local", "vertex"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Registry]:
    """Factory of registries of one backend (a fresh one per call, same storage)."""
    if request.param == "local":
        return lambda: open_registry(RegistrySettings(local_dir=str(tmp_path / "registry")))
    env: VertexTestEnv = request.getfixturevalue("vertex_env")
    settings = RegistrySettings(
        project=env.project,
        region=env.region,
        api_endpoint=env.api_endpoint,
        staging_bucket=env.staging_bucket,
    )
    return lambda: open_registry(settings)
