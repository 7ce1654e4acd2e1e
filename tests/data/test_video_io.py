"""PyAV decoding: content, timestamps, resize, fps resampling, and every kind of bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from model.data import video_io
from model.data.video_io import VideoDecodeError, decode_video, write_video


def _moving_square(num_frames: int = 12, height: int = 48, width: int = 64) -> np.ndarray:
    frames = np.full((num_frames, height, width, 3), 40, np.uint8)
    for t in range(num_frames):
        frames[t, 10:26, 4 * t : 4 * t + 16] = (220, 60, 30)
    return frames


def test_decode_matches_written_frames_in_order(tmp_path: Path) -> None:
    frames = _moving_square()
    path = tmp_path / "clip.avi"
    write_video(path, frames, fps=25, bit_rate=2_000_000)
    video = decode_video(path)
    assert video.frames.shape == frames.shape
    assert video.info.expected_frames == 12
    assert video.info.codec == "mpeg4"
    assert video.timestamps_us == [40_000 * t for t in range(12)]
    error = np.abs(video.frames.astype(int) - frames.astype(int)).mean(axis=(1, 2, 3))
    assert error.max() < 6
    # Order: each decoded frame is closest to the written frame with the same index.
    distances = np.abs(video.frames[:, None].astype(int) - frames[None].astype(int)).mean(
        axis=(2, 3, 4)
    )
    assert distances.argmin(axis=1).tolist() == list(range(12))


def test_decode_from_file_object_resize_and_fps(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, _moving_square(20), fps=25)
    with open(path, "rb") as handle:
        video = decode_video(io.BytesIO(handle.read()), short_side=24, fps=12.5)
    assert video.frames.shape == (10, 24, 32, 3)
    assert video.info.frame_rate == 12.5
    assert video.timestamps_us == [80_000 * t for t in range(10)]
    assert video_io.short_side_size(320, 240, 256) == (342, 256)
    assert video_io.short_side_size(240, 320, None) == (240, 320)


def test_encode_video_to_jpegs(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, _moving_square(6), fps=25)
    encoded = video_io.decode_video_to_jpegs(path, quality=80)
    assert len(encoded.jpeg_frames) == 6
    assert all(data[:2] == b"\xff\xd8" for data in encoded.jpeg_frames)
    assert video_io.decode_jpeg(encoded.jpeg_frames[0]).shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p, good: p.write_bytes(b""), video_io.REASON_EMPTY),
        (lambda p, good: p.write_bytes(b"garbage" * 50), video_io.REASON_UNREADABLE),
        (lambda p, good: p.write_bytes(good.read_bytes()[:-9000]), video_io.REASON_TRUNCATED),
        (lambda p, good: None, video_io.REASON_MISSING),
    ],
    ids=["empty", "garbage", "truncated", "missing"],
)
def test_bad_input_raises_with_reason(tmp_path: Path, long_video: Path, make, reason: str) -> None:
    bad = tmp_path / "bad.avi"
    make(bad, long_video)
    with pytest.raises(VideoDecodeError) as caught:
        decode_video(bad)
    assert caught.value.reason == reason
    assert str(bad) in str(caught.value)


def test_too_short_clip_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "short.avi"
    write_video(path, _moving_square(3), fps=25)
    with pytest.raises(VideoDecodeError) as caught:
        decode_video(path, min_frames=8)
    assert caught.value.reason == video_io.REASON_TOO_SHORT
