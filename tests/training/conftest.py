"""Fixtures for the training tests (tiny data directories in the real record format)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.training.helpers import moving_bar_clips, write_data_dir


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """4 classes x (3 train + 2 test) clips of 8 frames at 24x24."""
    names = ["Right", "Left", "Down", "Up"]
    return write_data_dir(
        tmp_path / "data",
        {
            "train": moving_bar_clips(4, 3, seed=1),
            "test": moving_bar_clips(4, 2, seed=2),
        },
        names,
    )


@pytest.fixture
def data_writer(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, clips: dict, class_names: Sequence[str], **kw: object) -> Path:
        return write_data_dir(tmp_path / name, clips, class_names, **kw)

    return make
