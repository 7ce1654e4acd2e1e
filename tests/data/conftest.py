"""Fixtures for the data tests: a tiny synthetic UCF101-layout set, corrupt files, records."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components.synth import generate_dataset
from tests.fakes.fixtures import gcs_emulator  # noqa: F401  (fixture for the gs:// tests)

# Small enough to keep the whole data suite within its time share.
NUM_CLASSES = 3
CLIPS_PER_CLASS = 4
NUM_FRAMES = 8
SIZE = 32


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic dataset in the UCF101 layout (3 classes x 4 clips, 8 frames of 32x32)."""
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(
        root,
        num_classes=NUM_CLASSES,
        clips_per_class=CLIPS_PER_CLASS,
        num_frames=NUM_FRAMES,
        size=SIZE,
        seed=3,
        num_groups=2,
        test_groups=1,
    )
    return root


def make_corrupt_files(folder: Path, good_video: Path) -> dict[str, Path]:
    """Write a truncated, an empty and a garbage video into ``folder``; return them by reason."""
    import numpy as np

    from components.synth import render_clip
    from model.data.video_io import write_video

    folder.mkdir(parents=True, exist_ok=True)
    del good_video
    # A 40-frame clip cut at 60%: the header still promises 40 frames, about 20 decode.
    whole = folder / "whole.avi"
    frames = render_clip(0, np.random.default_rng(5), num_frames=40, size=32)
    write_video(whole, frames, fps=25)
    data = whole.read_bytes()
    whole.unlink()
    truncated = folder / "v_Trunc_g01_c01.avi"
    truncated.write_bytes(data[: len(data) * 6 // 10])
    empty = folder / "v_Empty_g01_c01.avi"
    empty.write_bytes(b"")
    garbage = folder / "v_Garbage_g01_c01.avi"
    garbage.write_bytes(b"this is not a video at all" * 100)
    return {"truncated": truncated, "empty": empty, "unreadable": garbage}


@pytest.fixture
def long_video(tmp_path: Path) -> Path:
    """A 40-frame 64x48 AVI (for truncation: the AVI header promises all 40 frames)."""
    import numpy as np

    from model.data.video_io import write_video

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(40, 48, 64, 3), dtype=np.uint8)
    path = tmp_path / "long.avi"
    write_video(path, frames, fps=25)
    return path


@pytest.fixture
def copy_tree(tmp_path: Path):
    """Copy a folder into this test's tmp dir (tests mutate their copy, never the shared one)."""

    def _copy(source: Path, name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(source, target)
        return target

    return _copy


def local_beam_options():
    """In-process DirectRunner: the test inputs are tiny, so worker start-up would dominate."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(
        ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
    )


@pytest.fixture(scope="session")
def preprocessed(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic set converted to TFRecords (2 shards per split)."""
    from components.preprocess import PreprocessOptions, run_preprocess

    out = tmp_path_factory.mktemp("records")
    run_preprocess(
        PreprocessOptions(
            source="ucf101",
            videos=str(synth_root / "videos"),
            splits=str(synth_root / "ucfTrainTestlist"),
            out=str(out),
            num_shards=2,
            jpeg_quality=95,
        ),
        pipeline_options=local_beam_options(),
    )
    return out
