"""The real network end to end through the commands (slow: the tiny preset compiles for ~30 s):
connection-search training writes a learned structure, and evaluation reads the model directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main


@pytest.mark.slow
def test_connection_search_run_then_evaluate(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = tmp_path / "model"
    sets = [
        "data.num_classes=4",
        "data.image_size=24",
        "data.shuffle_buffer=16",
        "train.batch_size=4",
        "train.steps=20",
        "train.warmup_steps=2",
        "train.checkpoint_every=10",
        "train.log_every=10",
        "model.learnable_edges=true",
    ]
    argv = ["train", "--config", "synthetic", "--data", str(tiny_data)]
    argv += ["--model-dir", str(model_dir), "--json"]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 20
    assert summary["learned_structure"] == str(model_dir / "learned_structure.json")

    from model import presets, structures

    learned = structures.load_structure_file(model_dir / "learned_structure.json")
    weights = [w for _, b in learned.blocks for w in b.edge_weights]
    assert weights, "multi-input blocks carry learned weights"
    assert all(0.0 < w < 1.0 for w in weights)
    # Trained from sigmoid(0) = 0.5; 20 SGD steps move them.
    assert max(abs(w - 0.5) for w in weights) > 1e-4
    assert len(learned.nodes) == len(presets.get_preset("tiny").nodes)

    out = tmp_path / "eval"
    argv = ["evaluate", "--model-dir", str(model_dir), "--data", str(tiny_data)]
    assert main([*argv, "--out", str(out), "--clips", "2", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_clips"] == 8
    assert metrics["num_test_clips"] == 2
    assert 0.0 <= metrics["top_1"] <= 1.0
    assert metrics["top_5"] == 1.0  # 4 classes
    assert json.loads((out / "metrics.json").read_text())["top_1"] == metrics["top_1"]

    import tensorflow as tf

    served = tf.saved_model.load(str(model_dir / "saved_model"))
    frames = np.random.default_rng(0).integers(0, 255, (2, 8, 30, 40, 3), dtype=np.uint8)
    probs = served.signatures["serving_default"](frames=tf.constant(frames))["probabilities"]
    np.testing.assert_allclose(probs.numpy().sum(axis=1), 1.0, rtol=1e-5)
