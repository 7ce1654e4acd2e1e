"""Preemption: a training process killed with SIGKILL after a checkpoint resumes on restart and
ends bit-identical to an uninterrupted run with the same seed.

Each run is a separate process (a fresh interpreter, as after a preemption). The default test
drives ``components.train.train`` with a small stand-in network and the real input pipeline,
checkpoints and model-directory writer; the slow test runs the real ``assemblenet train``
command on the ``tiny`` preset.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

DRIVER = """
import sys
from components.train import train
from tests.training.helpers import conv_standin

train(sys.argv[1], data_dir=sys.argv[2], model_dir=sys.argv[3], build_model_fn=conv_standin)
"""


def _config(tmp_path: Path, **train: object) -> Path:
    cfg = {
        "model": {"preset": "tiny", "bn_momentum": 0.9},
        "data": {"num_classes": 4, "num_frames": 4, "image_size": 16, "shuffle_buffer": 8},
        "train": {
            "batch_size": 4,
            "learning_rate": 0.05,
            "warmup_steps": 4,
            "checkpoint_every": 4,
            "log_every": 4,
            "steps_per_execution": 2,
            "deterministic": True,
            "seed": 7,
            **train,
        },
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(command: list[str], kill_after_checkpoint: Path | None = None) -> int | None:
    """Runs ``command``; with ``kill_after_checkpoint``, SIGKILLs it as soon as a checkpoint
    is recorded there and returns that checkpoint's step."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if kill_after_checkpoint is None:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-4000:]
        return None
    # The manager's state file names a checkpoint only once all its files are complete.
    state = kill_after_checkpoint / "checkpoint"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        text = state.read_text() if state.exists() else ""
        match = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', text)
        if match:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return int(match.group(1))
        time.sleep(0.005)
    out = proc.communicate()[0]
    raise AssertionError(
        f"no checkpoint before the run ended (rc {proc.returncode}): {out[-3000:]}"
    )


def _weights(model_dir: Path) -> list[np.ndarray]:
    from components.evaluate import load_trained_model

    return load_trained_model(str(model_dir)).get_weights()


def _check_resumed(tmp_path: Path, steps: int, killed_at: int) -> None:
    import tensorflow as tf

    from model import train_lib
    from model.config import load_config

    assert 0 < killed_at < steps, "the kill must land mid-run"
    summary = json.loads((tmp_path / "resumed" / "train_summary.json").read_text())
    assert summary["steps"] == steps
    assert summary["initial_step"] >= killed_at  # a later checkpoint may have landed pre-kill
    assert summary["resumed_from"].endswith(f"ckpt-{summary['initial_step']}")
    assert summary["data_position_restored"] is True
    # Optimizer iterations (= the schedule position) in the final checkpoint.
    latest = tf.train.latest_checkpoint(str(tmp_path / "resumed" / "checkpoints"))
    names = [
        n
        for n, _ in tf.train.list_variables(latest)
        if n.startswith("optimizer/") and "iterations" in n
    ]
    assert int(tf.train.load_checkpoint(latest).get_tensor(names[0])) == steps
    cfg = load_config(tmp_path / "resumed" / "experiment.yaml")
    schedule = train_lib.learning_rate_schedule(cfg.train)
    assert float(schedule(steps)) == pytest.approx(0.0, abs=1e-9)  # cosine ends at 0
    # Bit-identical final weights.
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert len(straight) == len(resumed)
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path, tiny_data: Path) -> None:
    steps = 40
    config = _config(tmp_path, steps=steps)
    base = [sys.executable, "-c", DRIVER, str(config), str(tiny_data)]
    _run([*base, str(tmp_path / "straight")])
    killed_at = _run(
        [*base, str(tmp_path / "resumed")],
        kill_after_checkpoint=tmp_path / "resumed" / "checkpoints",
    )
    assert not (tmp_path / "resumed" / "model.keras").exists()  # really died mid-run
    _run([*base, str(tmp_path / "resumed")])
    _check_resumed(tmp_path, steps, killed_at)


@pytest.mark.slow
def test_cli_sigkill_then_resume_tiny_preset(tmp_path: Path, tiny_data: Path) -> None:
    steps = 40
    config = _config(tmp_path, steps=steps)
    cli = [sys.executable, "-m", "pipeline.cli", "train", "--config", str(config)]
    cli += ["--data", str(tiny_data), "--model-dir"]
    _run([*cli, str(tmp_path / "straight")])
    killed_at = _run(
        [*cli, str(tmp_path / "resumed")],
        kill_after_checkpoint=tmp_path / "resumed" / "checkpoints",
    )
    _run([*cli, str(tmp_path / "resumed")])
    _check_resumed(tmp_path, steps, killed_at)
