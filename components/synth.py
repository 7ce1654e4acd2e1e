"""Synthetic motion dataset: real AVI/MPEG-4 clips in the UCF101 layout, learnable only from motion.

Each clip shows one textured shape over a textured background. The class is *only* the motion:

=====================  =====================================================
class                  motion of the object relative to the background
=====================  =====================================================
MoveRight / MoveLeft   constant velocity along +x / -x
MoveDown / MoveUp      constant velocity along +y / -y
RotateClockwise / ...  constant angular velocity, clockwise / anticlockwise
Expand / Contract      exponential growth / shrinkage of the object's size
=====================  =====================================================

Everything a single frame shows is drawn independently of the class: shape (all shapes are
rotationally asymmetric so rotation is visible), colour, size, background texture and tint, pixel
noise, a global camera pan, and the object's pose at the middle of the clip (trajectories are
centred on it, from one class-independent range). The paired classes (right/left, down/up,
clockwise/anticlockwise, expand/contract) have mirror-identical distributions of frames, so they
are indistinguishable from frames in any order; only the sequence tells them apart. Over a whole
clip the moving classes spread wider along their axis, a weak cue a frame-shuffled model may use;
a single-frame classifier stays at chance (``tests/data/test_synth.py``).

Layout (UCF101's): ``out/videos/<Class>/v_<Class>_gGG_cCC.avi`` and
``out/ucfTrainTestlist/{classInd.txt, trainlist01.txt, testlist01.txt}``. Clips of one group
``gGG`` share a background style, and whole groups are held out for test (as UCF101 does), so
test clips never share a group with training clips. Output is deterministic given the seed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.data.video_io import write_video
from model.errors import DataError

logger = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = (
    "MoveRight",
    "MoveLeft",
    "MoveDown",
    "MoveUp",
    "RotateClockwise",
    "RotateCounterClockwise",
    "Expand",
    "Contract",
)

# Shapes as unions of axis-aligned rectangles (x0, y0, x1, y1) in unit object coordinates
# ([-1, 1]^2). None of them looks the same after any rotation, so the sense of rotation shows.
_SHAPES: tuple[tuple[tuple[float, float, float, float], ...], ...] = (
    ((-1.0, -1.0, -0.4, 1.0), (-1.0, 0.4, 1.0, 1.0)),  # L
    ((-1.0, -1.0, 1.0, -0.4), (-0.3, -1.0, 0.3, 1.0)),  # T
    ((-1.0, -1.0, -0.4, 1.0), (-1.0, -1.0, 1.0, -0.4), (-1.0, -0.2, 0.5, 0.3)),  # F
    ((-1.0, -0.35, 0.4, 0.35), (0.4, -1.0, 1.0, 1.0)),  # hammer
    ((-1.0, -1.0, 1.0, -0.4), (0.4, -1.0, 1.0, 1.0), (-1.0, 0.4, 0.4, 1.0)),  # hook
)


@dataclass(frozen=True)
class SynthSpec:
    """Parameters of a synthetic dataset.

    Attributes:
        num_classes: first N classes of :data:`CLASS_NAMES` (2..8).
        clips_per_class: clips generated per class.
        num_frames: frames per clip.
        size: frame side in pixels (square frames, even).
        seed: master seed; every clip has its own stream derived from (seed, class, clip).
        num_groups: groups ``g01..gNN`` per class (clips are spread over them).
        test_groups: the first this-many groups form the test split.
        fps: frame rate in the container header.
    """

    num_classes: int = 8
    clips_per_class: int = 100
    num_frames: int = 16
    size: int = 64
    seed: int = 0
    num_groups: int = 5
    test_groups: int = 1
    fps: float = 25.0

    def validate(self) -> None:
        """Raise :class:`DataError` for out-of-range parameters."""
        if not 2 <= self.num_classes <= len(CLASS_NAMES):
            raise DataError(f"classes must be in [2, {len(CLASS_NAMES)}], got {self.num_classes}")
        if self.clips_per_class < self.num_groups:
            raise DataError(
                f"clips per class ({self.clips_per_class}) must be >= groups ({self.num_groups})"
            )
        if not 1 <= self.test_groups < self.num_groups:
            raise DataError(f"test groups must be in [1, {self.num_groups - 1}]")
        if self.num_frames < 4:
            raise DataError(f"frames must be >= 4, got {self.num_frames}")
        if self.size < 32 or self.size % 2:
            raise DataError(f"size must be even and >= 32, got {self.size}")


def _smooth_noise(rng: np.random.Generator, height: int, width: int, scale: int) -> np.ndarray:
    """Return float [height, width] smooth noise in about [-1, 1] (bilinear upsampled grid)."""
    grid_h, grid_w = height // scale + 2, width // scale + 2
    grid = rng.uniform(-1.0, 1.0, size=(grid_h, grid_w))
    ys = np.arange(height) / scale
    xs = np.arange(width) / scale
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(20, 235, size=3)


def render_clip(
    class_index: int, rng: np.random.Generator, *, num_frames: int, size: int, style: int = 0
) -> np.ndarray:
    """Render one clip of class ``class_index`` as uint8 frames [T, size, size, 3].

    Args:
        class_index: index into :data:`CLASS_NAMES`.
        rng: the clip's random stream (all appearance is drawn from it).
        num_frames: T.
        size: frame side.
        style: group style id; tints the background so clips of a group look alike.
    """
    name = CLASS_NAMES[class_index]
    half = (num_frames - 1) / 2.0
    times = np.arange(num_frames) - half  # centred: the middle frame has the drawn pose

    # Appearance, independent of the class.
    shape = _SHAPES[rng.integers(len(_SHAPES))]
    object_colour = _random_colour(rng)
    style_rng = np.random.default_rng([style, 7])
    tint = style_rng.uniform(60, 200, size=3)
    background_colour = tint + rng.uniform(-30, 30, size=3)
    while np.abs(object_colour - background_colour).sum() < 150:
        object_colour = _random_colour(rng)
    texture_scale = int(rng.integers(4, 12))
    pad = size // 2
    texture = _smooth_noise(rng, size + 2 * pad, size + 2 * pad, texture_scale)
    texture_amp = rng.uniform(10, 35)
    noise_sigma = rng.uniform(2, 8)
    base_radius = rng.uniform(0.09, 0.14) * size
    angle0 = rng.uniform(0, 2 * math.pi)
    pan = rng.uniform(-0.6, 0.6, size=2)  # camera pan, px per frame
    # Motion magnitudes (the class picks only the sign or axis).
    speed = rng.uniform(1.2, 1.8) * (16 / num_frames)
    omega = math.radians(rng.uniform(9, 14)) * (16 / num_frames)
    growth = math.log(rng.uniform(2.0, 2.6)) / (num_frames - 1)

    velocity = np.zeros(2)
    spin = 0.0
    log_scale_rate = 0.0
    if name == "MoveRight":
        velocity = np.array([speed, 0.0])
    elif name == "MoveLeft":
        velocity = np.array([-speed, 0.0])
    elif name == "MoveDown":
        velocity = np.array([0.0, speed])
    elif name == "MoveUp":
        velocity = np.array([0.0, -speed])
    elif name == "RotateClockwise":
        spin = omega  # image y points down, so a positive angle turns clockwise on screen
    elif name == "RotateCounterClockwise":
        spin = -omega
    elif name == "Expand":
        log_scale_rate = growth
    elif name == "Contract":
        log_scale_rate = -growth
    # The pose at the middle of the clip is drawn from one class-independent range; objects may
    # leave the frame partly at the ends of a trajectory, for every class alike.
    centre = rng.uniform(0.3 * size, 0.7 * size, size=2)

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for index, t in enumerate(times):
        offset = np.round(pan * t).astype(int)
        window = texture[
            pad + offset[1] : pad + offset[1] + size, pad + offset[0] : pad + offset[0] + size
        ]
        image = background_colour[None, None, :] + texture_amp * window[..., None]
        cx, cy = centre + velocity * t + pan * t
        radius = base_radius * math.exp(log_scale_rate * t)
        angle = angle0 + spin * t
        cos, sin = math.cos(angle), math.sin(angle)
        # Inverse pose: image coordinates to unit object coordinates.
        dx, dy = (xs - cx) / radius, (ys - cy) / radius
        u = cos * dx + sin * dy
        v = -sin * dx + cos * dy
        mask = np.zeros((size, size), bool)
        for x0, y0, x1, y1 in shape:
            mask |= (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)
        image[mask] = object_colour + 0.5 * texture_amp * window[mask][:, None]
        image += rng.normal(0, noise_sigma, size=image.shape)
        frames[index] = np.clip(image, 0, 255).astype(np.uint8)
    return frames


def generate_dataset(
    out_dir: str | Path,
    *,
    num_classes: int = 8,
    clips_per_class: int = 100,
    num_frames: int = 16,
    size: int = 64,
    seed: int = 0,
    num_groups: int = 5,
    test_groups: int = 1,
    fps: float = 25.0,
) -> Path:
    """Write the synthetic dataset in the UCF101 layout and return ``out_dir``.

    The videos and split files are written into a temporary folder next to ``out_dir`` and moved
    into place at the end, so an interrupted run leaves no half-written dataset.

    Returns:
        ``out_dir`` holding ``videos/`` and ``ucfTrainTestlist/`` (split 1) and ``synth.json``.
    """
    spec = SynthSpec(
        num_classes=num_classes,
        clips_per_class=clips_per_class,
        num_frames=num_frames,
        size=size,
        seed=seed,
        num_groups=num_groups,
        test_groups=test_groups,
        fps=fps,
    )
    spec.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for child in ("videos", "ucfTrainTestlist"):
        if (out / child).exists():
            raise DataError(f"{out / child} already exists; choose an empty output folder")
    names = CLASS_NAMES[:num_classes]
    start = time.monotonic()
    total = num_classes * clips_per_class
    with tempfile.TemporaryDirectory(dir=out, prefix=".synth-") as tmp_name:
        tmp = Path(tmp_name)
        splits = tmp / "ucfTrainTestlist"
        splits.mkdir()
        train_lines: list[str] = []
        test_lines: list[str] = []
        done = 0
        for class_index, name in enumerate(names):
            (tmp / "videos" / name).mkdir(parents=True)
            for clip in range(clips_per_class):
                group = clip % num_groups + 1
                number = clip // num_groups + 1
                rng = np.random.default_rng([seed, class_index, clip])
                frames = render_clip(
                    class_index,
                    rng,
                    num_frames=num_frames,
                    size=size,
                    style=seed * 1000 + group,
                )
                relative = f"{name}/v_{name}_g{group:02d}_c{number:02d}.avi"
                write_video(tmp / "videos" / relative, frames, fps=fps)
                if group <= test_groups:
                    test_lines.append(relative)
                else:
                    train_lines.append(f"{relative} {class_index + 1}")
                done += 1
            elapsed = time.monotonic() - start
            logger.info(
                "synth: %d/%d clips (%.0f clips/s, ETA %.0f s)",
                done,
                total,
                done / max(elapsed, 1e-9),
                (total - done) * elapsed / max(done, 1),
            )
        (splits / "classInd.txt").write_text(
            "".join(f"{i + 1} {name}\n" for i, name in enumerate(names))
        )
        (splits / "trainlist01.txt").write_text("".join(f"{line}\n" for line in train_lines))
        (splits / "testlist01.txt").write_text("".join(f"{line}\n" for line in test_lines))
        meta = {
            "classes": list(names),
            "clips_per_class": clips_per_class,
            "num_frames": num_frames,
            "size": size,
            "seed": seed,
            "num_groups": num_groups,
            "test_groups": list(range(1, test_groups + 1)),
            "fps": fps,
            "train_clips": len(train_lines),
            "test_clips": len(test_lines),
        }
        (tmp / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
        for child in ("videos", "ucfTrainTestlist", "synth.json"):
            target = out / child
            if target.is_file():
                target.unlink()
            shutil.move(str(tmp / child), str(target))
    logger.info(
        "synth: wrote %d clips (%d train, %d test) to %s in %.1f s",
        total,
        len(train_lines),
        len(test_lines),
        out,
        time.monotonic() - start,
    )
    return out


def run_from_args(args: argparse.Namespace) -> Path:
    """Run :func:`generate_dataset` from parsed ``data synth`` arguments."""
    return generate_dataset(
        args.out,
        num_classes=args.classes,
        clips_per_class=args.clips_per_class,
        num_frames=args.frames,
        size=args.size,
        seed=args.seed,
        num_groups=args.groups,
        test_groups=args.test_groups,
    )
