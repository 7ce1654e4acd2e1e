"""Registration on both backends: versions, aliases, evaluation, gate, idempotency, failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from components.register import register_model
from components.registry import Registry
from model.errors import RegistryError
from tests.registry.helpers import MODEL, make_model_dir, write_metrics


def _register(
    reg: Registry, tmp_path: Path, run: str, top_1: float, **kwargs: object
) -> dict[str, object]:
    model_dir = make_model_dir(tmp_path, f"model-{run}")
    metrics = write_metrics(tmp_path / f"metrics-{run}.json", top_1)
    return register_model(
        model_dir,
        metrics,
        registry=reg,
        model_name=MODEL,
        run_id=run,
        labels={"dataset": "synthetic", "config": "synthetic.yaml", "code_version": "abc123"},
        **kwargs,  # type: ignore[arg-type]
    )


def _aliases(reg: Registry) -> dict[str, str]:
    return {a: v.version_id for v in reg.list_versions(MODEL) for a in v.aliases}


def test_first_version_becomes_champion_with_evaluation(
    backend: Callable[[], Registry], tmp_path: Path
) -> None:
    reg = backend()
    result = _register(reg, tmp_path, "run-1", 0.5)
    assert result["version_id"] == "1"
    assert result["promoted"] is True
    assert result["champion_metric_before"] is None
    assert _aliases(reg) == {"default": "1", "challenger": "1", "champion": "1"}
    version = reg.get_version(MODEL, "champion")
    assert version.labels["pipeline-run"] == "run-1"
    assert version.labels["dataset"] == "synthetic"
    assert version.labels["config"] == "synthetic-yaml"
    assert version.labels["code_version"] == "abc123"
    assert reg.get_evaluation(MODEL, "1")["top_1"] == pytest.approx(0.5)


def test_gate_both_directions_and_rollback(backend: Callable[[], Registry], tmp_path: Path) -> None:
    reg = backend()
    _register(reg, tmp_path, "run-1", 0.5)
    worse = _register(reg, tmp_path, "run-2", 0.4, min_gain=0.0)
    assert worse["version_id"] == "2"
    assert worse["promoted"] is False
    assert worse["champion_version_after"] == "1"
    assert _aliases(reg) == {"default": "1", "champion": "1", "challenger": "2"}
    # Not enough gain: 0.55 - 0.5 < 0.1.
    small = _register(reg, tmp_path, "run-3", 0.55, min_gain=0.1)
    assert small["promoted"] is False
    better = _register(reg, tmp_path, "run-4", 0.7, min_gain=0.1)
    assert better["promoted"] is True
    assert better["champion_metric_before"] == pytest.approx(0.5)
    assert better["champion_metric_after"] == pytest.approx(0.7)
    assert _aliases(reg) == {"default": "4", "champion": "4", "challenger": "4"}
    # Evaluations sit on their exact versions.
    assert [reg.get_evaluation(MODEL, v)["top_1"] for v in "1234"] == pytest.approx(
        [0.5, 0.4, 0.55, 0.7]
    )
    # Rollback returns to the previous champion, then refuses to go past the first one.
    assert reg.rollback(MODEL).version_id == "1"
    assert _aliases(reg)["champion"] == "1"
    assert _aliases(reg)["default"] == "1"
    with pytest.raises(RegistryError, match="no earlier champion"):
        reg.rollback(MODEL)
    # Manual promotion keeps history: promote 3 then roll back lands on 1 again.
    reg.promote(MODEL, "3")
    assert _aliases(reg)["champion"] == "3"
    assert reg.rollback(MODEL).version_id == "1"


def test_rerun_same_run_id_is_idempotent(backend: Callable[[], Registry], tmp_path: Path) -> None:
    reg = backend()
    first = _register(reg, tmp_path, "run-1", 0.5)
    _register(reg, tmp_path, "run-2", 0.4)
    again = _register(reg, tmp_path, "run-1", 0.5)
    assert again["reused"] is True
    assert again["version_id"] == first["version_id"]
    assert [v.version_id for v in backend().list_versions(MODEL)] == ["1", "2"]
    # The re-run changed nothing: run-2 is still the challenger.
    assert _aliases(reg) == {"default": "1", "champion": "1", "challenger": "2"}


def test_unknown_alias_and_bad_inputs(backend: Callable[[], Registry], tmp_path: Path) -> None:
    reg = backend()
    _register(reg, tmp_path, "run-1", 0.5)
    with pytest.raises(RegistryError, match="nope"):
        reg.get_version(MODEL, "nope")
    with pytest.raises(RegistryError, match="missing"):
        reg.list_versions("missing")
    with pytest.raises(RegistryError, match="invalid model name"):
        _register_named(reg, tmp_path, "Bad Name")
    with pytest.raises(RegistryError, match="top_9"):
        _register(reg, tmp_path, "run-x", 0.5, metric="top_9")


def _register_named(reg: Registry, tmp_path: Path, name: str) -> None:
    register_model(
        make_model_dir(tmp_path, "named"),
        write_metrics(tmp_path / "m.json", 0.1),
        registry=reg,
        model_name=name,
        run_id="r",
    )


def test_open_registry_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.registry import RegistrySettings, open_registry
    from components.registry.local import LocalRegistry
    from pipeline.settings import Settings

    assert isinstance(open_registry(str(tmp_path)), LocalRegistry)
    assert isinstance(open_registry(tmp_path), LocalRegistry)
    env_settings = Settings(project=None, local_registry=str(tmp_path / "r"))
    local = open_registry(env_settings)
    assert isinstance(local, LocalRegistry)
    assert local.root == tmp_path / "r"
    monkeypatch.setenv("VERTEX_API_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("VERTEX_STAGING_BUCKET", "gs://bucket")
    for uri in ("vertex://projects/p1/locations/europe-west4", "vertex://p1/europe-west4"):
        vertex = open_registry(uri)
        assert vertex.kind == "vertex"
        assert (vertex.project, vertex.region) == ("p1", "europe-west4")  # type: ignore[attr-defined]
        assert vertex.api_endpoint == "http://127.0.0.1:9"  # type: ignore[attr-defined]
        assert vertex.staging_bucket == "gs://bucket"  # type: ignore[attr-defined]
    with pytest.raises(RegistryError, match="vertex://"):
        open_registry("vertex://only-project")
    assert RegistrySettings.from_env(project="p").project == "p"
