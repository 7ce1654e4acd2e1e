"""A failure in the middle of registration leaves aliases as they were; a re-run resumes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions

from components.register import register_model
from components.registry import Registry, RegistrySettings, open_registry
from components.registry.local import LocalRegistry
from tests.fakes.fixtures import VertexTestEnv
from tests.registry.helpers import MODEL, make_model_dir, write_metrics


class _DiskFull(OSError):
    pass


class FlakyLocalRegistry(LocalRegistry):
    """The embedded registry whose storage fails once in a chosen primitive."""

    def __init__(self, root: Path, fail_in: str) -> None:
        super().__init__(root)
        self.fail_in = fail_in

    def _maybe_fail(self, name: str) -> None:
        if self.fail_in == name:
            self.fail_in = ""
            raise _DiskFull(28, "No space left on device")

    def import_evaluation(
        self, model_name: str, version_id: str, metrics: Mapping[str, Any], display_name: str
    ) -> None:
        self._maybe_fail("import_evaluation")
        super().import_evaluation(model_name, version_id, metrics, display_name)

    def merge_aliases(self, model_name: str, version_id: str, aliases: Any) -> Any:
        self._maybe_fail("merge_aliases")
        return super().merge_aliases(model_name, version_id, aliases)

    def update_labels(
        self, model_name: str, version_id: str, set_labels: Any, remove: Any = ()
    ) -> Any:
        self._maybe_fail("update_labels")
        return super().update_labels(model_name, version_id, set_labels, remove)


def _register(reg: Registry, tmp_path: Path, run: str, top_1: float) -> dict[str, Any]:
    return register_model(
        make_model_dir(tmp_path, f"m-{run}"),
        write_metrics(tmp_path / f"metrics-{run}.json", top_1),
        registry=reg,
        model_name=MODEL,
        run_id=run,
    )


def _aliases(reg: Registry) -> dict[str, str]:
    return {a: v.version_id for v in reg.list_versions(MODEL) for a in v.aliases}


@pytest.mark.parametrize("fail_in", ["import_evaluation", "merge_aliases"])
def test_local_failure_midway_keeps_aliases(tmp_path: Path, fail_in: str) -> None:
    reg = FlakyLocalRegistry(tmp_path / "registry", fail_in="")
    _register(reg, tmp_path, "run-1", 0.5)
    before = _aliases(reg)
    reg.fail_in = fail_in
    with pytest.raises(_DiskFull):
        _register(reg, tmp_path, "run-2", 0.9)
    assert _aliases(reg) == before
    # Resuming the same run finishes it without a second upload.
    result = _register(reg, tmp_path, "run-2", 0.9)
    assert result["promoted"] is True
    assert result["reused"] is True
    assert [v.version_id for v in reg.list_versions(MODEL)] == ["1", "2"]
    assert _aliases(reg) == {"default": "2", "champion": "2", "challenger": "2"}
    assert reg.get_evaluation(MODEL, "2")["top_1"] == pytest.approx(0.9)


def test_failure_after_commit_is_finished_by_rerun(tmp_path: Path) -> None:
    """A crash after the alias move (bookkeeping labels) is completed by running again."""
    reg = FlakyLocalRegistry(tmp_path / "registry", fail_in="")
    _register(reg, tmp_path, "run-1", 0.5)
    reg.fail_in = "update_labels"
    with pytest.raises(_DiskFull):
        _register(reg, tmp_path, "run-2", 0.9)
    # The commit happened: version 2 serves, but its registration is not marked done.
    assert _aliases(reg)["champion"] == "2"
    assert reg.get_version(MODEL, "2").labels["registration"] == "pending"
    result = _register(reg, tmp_path, "run-2", 0.9)
    assert result["promoted"] is True
    assert [v.version_id for v in reg.list_versions(MODEL)] == ["1", "2"]
    assert reg.get_version(MODEL, "2").labels["registration"] == "done"
    # History is intact: rolling back returns to version 1.
    assert reg.rollback(MODEL).version_id == "1"


@pytest.mark.parametrize("fail_on", ["evaluations:import", ":mergeVersionAliases", ":upload"])
def test_vertex_failure_midway_keeps_aliases(
    vertex_env: VertexTestEnv, tmp_path: Path, fail_on: str
) -> None:
    reg = open_registry(
        RegistrySettings(
            project=vertex_env.project,
            region=vertex_env.region,
            api_endpoint=vertex_env.api_endpoint,
            staging_bucket=vertex_env.staging_bucket,
        )
    )
    _register(reg, tmp_path, "run-1", 0.5)
    before = vertex_env.fake.aliases(MODEL)
    assert before == {"default": "1", "champion": "1", "challenger": "1"}
    vertex_env.fake.fail("POST", fail_on)
    with pytest.raises(exceptions.InternalServerError):
        _register(reg, tmp_path, "run-2", 0.9)
    assert vertex_env.fake.aliases(MODEL) == before
    result = _register(reg, tmp_path, "run-2", 0.9)
    assert result["promoted"] is True
    assert result["version_id"] == "2"
    assert len(vertex_env.fake.models[MODEL].versions) == 2
    assert vertex_env.fake.aliases(MODEL) == {"default": "2", "champion": "2", "challenger": "2"}
