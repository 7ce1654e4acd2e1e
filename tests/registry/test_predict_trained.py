"""Slow: predict with a model trained by the real stages on the synthetic dataset.

synth (B) -> preprocess (B, Beam DirectRunner) -> train + evaluate (C) -> register -> predict.
Prediction decodes the raw test videos itself, so it agreeing with the evaluation on the
TFRecords shows that serving sees the clips as preprocessing and evaluation did.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.register import register_model
from pipeline.cli import main

NUM_CLASSES = 4


@pytest.mark.slow
def test_trained_champion_classifies_synthetic_clips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from components.evaluate import evaluate
    from components.preprocess import PreprocessOptions, run_preprocess
    from components.synth import generate_dataset
    from components.train import train

    synth = generate_dataset(
        tmp_path / "synth", num_classes=NUM_CLASSES, clips_per_class=20, num_frames=16, size=64
    )
    run_preprocess(
        PreprocessOptions(
            source="ucf101",
            out=str(tmp_path / "data"),
            videos=str(synth / "videos"),
            splits=str(synth / "ucfTrainTestlist"),
            direct_num_workers=1,
            direct_running_mode="in_memory",
        )
    )
    overrides = {"data.num_classes": NUM_CLASSES}
    train(
        "synthetic",
        data_dir=str(tmp_path / "data"),
        model_dir=str(tmp_path / "model"),
        overrides=overrides,
    )
    metrics = evaluate(str(tmp_path / "model"), str(tmp_path / "data"), str(tmp_path / "eval"))
    registry = tmp_path / "registry"
    result = register_model(
        tmp_path / "model",
        tmp_path / "eval" / "metrics.json",
        registry=registry,
        model_name="synthetic",
        run_id="slow-1",
    )
    assert result["promoted"] is True

    test_list = (synth / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    videos = [str(synth / "videos" / line) for line in test_list]
    status = main(
        ["predict", "--model", "synthetic@champion", *videos, "--json", "--registry", str(registry)]
    )
    out = capsys.readouterr().out
    assert status == 0
    predictions = json.loads(out)["predictions"]
    correct = sum(p["top_k"][0]["label"] == Path(p["video"]).parent.name for p in predictions)
    accuracy = correct / len(predictions)
    # Same pixels as evaluation: accuracy within one clip of the evaluated top-1.
    assert abs(accuracy - metrics["top_1"]) <= 1 / len(predictions) + 1e-9
    assert accuracy >= 0.5  # chance is 0.25
