"""The synthetic motion dataset: layout, determinism, and no class information in single frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.synth import CLASS_NAMES, generate_dataset, render_clip
from model.data.video_io import decode_video
from model.errors import DataError
from tests.data.conftest import CLIPS_PER_CLASS, NUM_CLASSES, NUM_FRAMES, SIZE


def test_layout_groups_and_split_files(synth_root: Path) -> None:
    lists = synth_root / "ucfTrainTestlist"
    names = CLASS_NAMES[:NUM_CLASSES]
    assert (lists / "classInd.txt").read_text().splitlines() == [
        f"{i + 1} {name}" for i, name in enumerate(names)
    ]
    train = (lists / "trainlist01.txt").read_text().splitlines()
    test = (lists / "testlist01.txt").read_text().splitlines()
    assert len(train) + len(test) == NUM_CLASSES * CLIPS_PER_CLASS
    # Whole groups are held out: g01 is test, g02 is train, as UCF101 splits by group.
    assert all("_g01_" in line for line in test)
    assert all("_g02_" in line for line in train)
    for line in train:
        relative, index = line.split()
        assert relative.split("/")[0] == names[int(index) - 1]
        assert (synth_root / "videos" / relative).is_file()
    video = decode_video(synth_root / "videos" / test[0])
    assert video.frames.shape == (NUM_FRAMES, SIZE, SIZE, 3)
    assert video.info.codec == "mpeg4"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    kwargs = {"num_classes": 2, "clips_per_class": 2, "num_frames": 4, "size": 32, "num_groups": 2}
    one = generate_dataset(tmp_path / "one", seed=5, **kwargs)
    two = generate_dataset(tmp_path / "two", seed=5, **kwargs)
    other = generate_dataset(tmp_path / "other", seed=6, **kwargs)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len(files) == 2 * 2 + 4
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
    assert any(
        (one / f).read_bytes() != (other / f).read_bytes() for f in files if f.suffix == ".avi"
    )
    with pytest.raises(DataError, match="already exists"):
        generate_dataset(tmp_path / "one", seed=5, **kwargs)
    with pytest.raises(DataError, match="classes"):
        generate_dataset(tmp_path / "bad", num_classes=9)


def test_synth_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    args = ["data", "synth", f"--out={tmp_path}", "--classes=2", "--clips-per-class=2"]
    assert main([*args, "--frames=4", "--size=32", "--groups=2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["train_clips"], summary["test_clips"]) == (2, 2)
    assert len(list((tmp_path / "videos").rglob("*.avi"))) == 4
    assert main([*args, "--classes=1"]) == 2  # bad input: a one-line error, exit status 2


def _single_frames(clips_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One random frame per clip: float frames [N, 64, 64, 3] and labels [N]."""
    frames, labels = [], []
    for label in range(len(CLASS_NAMES)):
        for clip in range(clips_per_class):
            rng = np.random.default_rng([seed, label, clip])
            clip_frames = render_clip(label, rng, num_frames=16, size=64, style=clip % 5)
            frames.append(clip_frames[rng.integers(16)].astype(np.float32))
            labels.append(label)
    return np.stack(frames), np.array(labels)


def _features(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(8x8 downsampled pixels [N, 192], per-frame statistics [N, 7])."""
    small = frames.reshape(len(frames), 8, 8, 8, 8, 3).mean(axis=(2, 4)).reshape(len(frames), -1)
    gradient = np.abs(np.diff(frames, axis=1)).mean(axis=(1, 2, 3))
    stats = np.hstack([frames.mean(axis=(1, 2)), frames.std(axis=(1, 2)), gradient[:, None]])
    return small, stats


def _logistic_regression_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> float:
    """Softmax regression trained by gradient descent (numpy), test top-1 accuracy."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    classes = int(train_y.max()) + 1
    weights = np.zeros((train_x.shape[1], classes))
    bias = np.zeros(classes)
    targets = np.eye(classes)[train_y]
    for _ in range(300):
        logits = train_x @ weights + bias
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        grad = probs - targets
        weights -= 0.5 * (train_x.T @ grad / len(train_x) + 1e-3 * weights)
        bias -= 0.5 * grad.mean(0)
    return float(((test_x @ weights + bias).argmax(1) == test_y).mean())


def test_no_single_frame_reveals_the_class() -> None:
    train_frames, train_y = _single_frames(30, seed=1)
    test_frames, test_y = _single_frames(20, seed=2)
    (train_pixels, train_stats), (test_pixels, test_stats) = (
        _features(train_frames),
        _features(test_frames),
    )
    classes = len(CLASS_NAMES)
    chance = 1 / classes
    # Per-frame statistics: class means differ by a small fraction of the within-class spread.
    for column in range(train_stats.shape[1]):
        values = train_stats[:, column]
        class_means = np.array([values[train_y == c].mean() for c in range(classes)])
        within = np.sqrt(np.mean([values[train_y == c].var() for c in range(classes)]))
        assert class_means.std() / within < 0.4, column
    # A classifier on one frame (pixels + statistics) stays near chance.
    accuracy = _logistic_regression_accuracy(
        np.hstack([train_pixels, train_stats]),
        train_y,
        np.hstack([test_pixels, test_stats]),
        test_y,
    )
    assert accuracy < chance + 0.1, accuracy
    # Positive control: the same classifier finds a cue that single frames do carry (a
    # class-dependent brightness), so the check above is able to fail.
    leaked = [
        np.hstack(_features(np.clip(f + 15.0 * y[:, None, None, None], 0, 255)))
        for f, y in ((train_frames, train_y), (test_frames, test_y))
    ]
    leaked_accuracy = _logistic_regression_accuracy(leaked[0], train_y, leaked[1], test_y)
    assert leaked_accuracy > accuracy + 0.2, (leaked_accuracy, accuracy)
