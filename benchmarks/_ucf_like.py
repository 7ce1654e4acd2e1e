"""UCF101-like test clips for the data benchmarks: 320x240 MPEG-4 (XVID tag), 25 fps, ~7 s.

Content is a panning smooth-noise texture with moving blocks and sensor noise, so the encoder
sees real motion and texture (close to UCF101's ~500 kb/s and ~3.5 KB per frame).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_ucf_like_clip(path: Path, *, seed: int, frames: int = 175, fps: int = 25) -> None:
    """Write one 320x240 MPEG-4 AVI of ``frames`` frames."""
    import av

    rng = np.random.default_rng(seed)
    height, width = 240, 320
    coarse = rng.uniform(0, 255, size=(height // 8 + 40, width // 8 + 40, 3))
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    pan = rng.uniform(-1.5, 1.5, size=2)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 550_000
        stream.codec_context.codec_tag = "XVID"
        for t in range(frames):
            y, x = (np.array([80, 80]) + pan * t).astype(int) % 150
            image = texture[y : y + height, x : x + width].copy()
            for block in range(3):
                by = int(120 + 80 * np.sin(0.05 * t + block))
                bx = int(160 + 120 * np.cos(0.03 * t + 2 * block))
                image[max(0, by - 20) : by + 20, max(0, bx - 20) : bx + 20] = 60 * block + 40
            image += rng.normal(0, 4, size=image.shape)
            frame = av.VideoFrame.from_ndarray(np.clip(image, 0, 255).astype(np.uint8), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_clips(folder: Path, count: int, frames: int = 175) -> list[Path]:
    """Write ``count`` clips into ``folder`` (reusing ones already there) and return them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"clip_{index:04d}.avi"
        if not path.exists():
            write_ucf_like_clip(path, seed=index, frames=frames)
        paths.append(path)
    return paths
