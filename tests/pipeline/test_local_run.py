"""The whole DAG under kfp.local on a tiny synthetic dataset, registering into both registries.

Two pipeline runs in one work directory cover both directions of the promotion gate against a
champion the test registers first: a weak champion is replaced (embedded registry, through the
CLI), a strong one is kept (fake Vertex AI registry with the GCS emulator). The first run does
everything (Beam DirectRunner preprocessing, a few CPU training steps, evaluation, registration);
the second reuses its preprocess/train/evaluate outputs through kfp.local's cache, so only
registration runs again, which also shows per-task caching at work.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from components.register import register_model
from components.registry import open_registry
from model.errors import ConfigError
from pipeline.cli import main
from pipeline.local_run import ExecutorInputFilter, LocalRunResult, run_local

MODEL = "tiny-synthetic"
# A few steps of a tiny network on 3 classes x 5 clips of 8 frames at 32 px.
OVERRIDES = {
    "data.num_classes": 3,
    "data.num_frames": 4,
    "data.image_size": 32,
    "data.temporal_stride": 1,
    "data.shuffle_buffer": 16,
    "train.steps": 2,
    "train.batch_size": 4,
    "train.steps_per_execution": 1,
    "train.checkpoint_every": 2,
    "train.log_every": 1,
    "train.warmup_steps": 0,
    "eval.batch_size": 4,
}
BEAM = {"direct_running_mode": "in_memory", "direct_num_workers": 1}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def raw_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from components.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth") / "raw"
    return generate_dataset(out, num_classes=3, clips_per_class=5, num_frames=8, size=32, seed=1)


def _seed_champion(tmp_path: Path, registry: str, top_1: float) -> dict[str, Any]:
    """Registers a stand-in champion whose evaluation says ``top_1``."""
    model_dir = tmp_path / "seed_model"
    (model_dir / "saved_model").mkdir(parents=True)
    (model_dir / "saved_model" / "saved_model.pb").write_bytes(b"seed")
    (model_dir / "label_map.txt").write_text("a\nb\nc\n")
    metrics = tmp_path / "seed_metrics.json"
    metrics.write_text(json.dumps({"top_1": top_1, "top_5": 1.0, "num_clips": 3}))
    result = register_model(
        model_dir, metrics, registry=registry, model_name=MODEL, run_id="seed-run"
    )
    assert result["champion"]
    return result


def _check_outputs(result: LocalRunResult) -> None:
    assert result.state == "SUCCEEDED"
    assert (result.model_dir / "saved_model").is_dir()
    assert (result.model_dir / "model.keras").is_file()
    metrics = json.loads(result.metrics_path.read_text())
    assert 0.0 <= metrics["top_1"] <= 1.0
    assert metrics["num_clips"] == 3
    assert result.top_1 == pytest.approx(metrics["top_1"])
    status = json.loads((result.run_dir / "record-status-op" / "run_status").read_text())
    assert status["state"] == "SUCCEEDED"


def test_local_run_embedded_registry_promotes_over_weaker_champion(
    tmp_path: Path, workdir: Path, raw_videos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = str(workdir / "registry")
    seed = _seed_champion(tmp_path, registry, top_1=-1.0)
    args = ["pipeline", "run", "--local", "--workdir", str(workdir), "--cache"]
    args += ["--data-location", str(raw_videos), "--model-display-name", MODEL, "--json"]
    args += [f"--set={key}={value}" for key, value in OVERRIDES.items()]
    args += [f"--beam-option={key}={value}" for key, value in BEAM.items()]
    assert main(args) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    # Task logs stream to stderr without kfp's per-task executor-input dump.
    assert "Got executor_input: (omitted" in captured.err
    assert '"parameterValues"' not in captured.err
    assert "test: top-1" in captured.err  # the tasks' own log lines still come through
    result = LocalRunResult(
        **{
            **out,
            "run_dir": Path(out["run_dir"]),
            "model_dir": Path(out["model_dir"]),
            "metrics_path": Path(out["metrics_path"]),
        }
    )
    _check_outputs(result)
    assert result.registry == registry
    registration = result.registration
    assert registration["promoted"]
    assert registration["champion"]
    assert registration["champion_version_before"] == seed["version"]
    reg = open_registry(registry)
    champion = reg.champion(MODEL)
    assert champion is not None
    assert champion.version_id == registration["version"]
    assert champion.version_id != seed["version"]
    assert champion.labels["dataset"]
    # The registered version holds a copy of the trained SavedModel.
    assert "challenger" in registration["aliases"]


def test_local_run_vertex_registry_keeps_stronger_champion(
    tmp_path: Path, workdir: Path, raw_videos: Path, vertex_env: Any
) -> None:
    uri = f"vertex://projects/{vertex_env.project}/locations/{vertex_env.region}"
    seed = _seed_champion(tmp_path, uri, top_1=2.0)
    earlier_runs = list((workdir / "pipeline_root").glob("assemblenet-training-*"))
    result = run_local(
        workdir,
        enable_caching=True,
        config_overrides=OVERRIDES,
        data_location=str(raw_videos),
        registry=uri,
        model_display_name=MODEL,
        beam_options=BEAM,
    )
    _check_outputs(result)
    # Per-task caching: when the first test ran in this work directory, preprocess, train and
    # evaluate were served from its outputs and only registration (never cached) ran again.
    if earlier_runs:
        assert sorted(p.name for p in result.run_dir.iterdir()) == [
            "record-status-op",
            "register-op",
        ]
        assert result.model_dir.parents[1] in earlier_runs
    registration = result.registration
    assert not registration["promoted"]
    assert not registration["champion"]
    assert "challenger" in registration["aliases"]
    model_id = registration["resource_name"].split("/models/")[1].split("@")[0]
    aliases = vertex_env.fake.aliases(model_id)
    assert aliases["champion"] == seed["version"]
    assert aliases["challenger"] == registration["version"] != seed["version"]
    # The evaluation was imported onto exactly the new version.
    imported = vertex_env.fake.requests_to("POST", f"@{registration['version']}/evaluations:import")
    assert len(imported) == 1


def test_bad_config_fails_before_anything_runs(tmp_path: Path, raw_videos: Path) -> None:
    with pytest.raises(ConfigError, match="stepz"):
        run_local(tmp_path, config_overrides={"train.stepz": 1}, data_location=str(raw_videos))
    assert not (tmp_path / "pipeline_root").exists()


def test_missing_data_location_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["pipeline", "run", "--local", "--workdir", str(tmp_path), "--data-location", "/nope"]
    )
    assert status == 2
    assert "data location /nope does not exist" in capsys.readouterr().err


def test_run_without_local_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "run"]) == 2
    assert "pass --local" in capsys.readouterr().err


def test_executor_input_filter_drops_only_the_json_dump() -> None:
    dump = json.dumps({"inputs": {"parameterValues": {"split": "test"}}, "outputs": {}}, indent=4)
    indent = "    "
    stream = (
        f"{indent}[KFP Executor 1 INFO]: Loading component\n"
        f"{indent}[KFP Executor 2 INFO]: Got executor_input:\n"
        + "".join(f"{indent}{line}\n" for line in dump.splitlines())
        + f"{indent}[KFP Executor 3 INFO]: test: top-1 0.9\n"
        + "a partial line"
    )
    target = io.StringIO()
    log = ExecutorInputFilter(target)
    for start in range(0, len(stream), 7):  # arbitrary write boundaries, as print() makes
        log.write(stream[start : start + 7])
    log.flush()
    assert target.getvalue().splitlines() == [
        f"{indent}[KFP Executor 1 INFO]: Loading component",
        f"{indent}[KFP Executor 2 INFO]: Got executor_input: (omitted; --verbose shows it)",
        f"{indent}[KFP Executor 3 INFO]: test: top-1 0.9",
        "a partial line",
    ]
    # A marker not followed by a JSON object drops nothing.
    other = io.StringIO()
    log = ExecutorInputFilter(other)
    log.write("Got executor_input:\nnot json\n")
    assert other.getvalue().splitlines()[1] == "not json"
