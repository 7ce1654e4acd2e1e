"""Benchmark: training input pipeline clips/s vs bare JPEG decoding of the same frames.

Records hold UCF101-sized frames (320x240 JPEG q90, 64 frames per clip). ``pipeline`` is
``make_dataset(training=True)`` producing 32x224x224 float32 clips (random window, crop, flip,
resize, batching). ``bare`` is a ``tf.data`` pipeline over the same clips, already in memory,
that only decodes 32 full JPEG frames per clip with the same parallelism. The goal is a ratio
of at least 0.8. The CPU may be shared with other work.

``device_pipeline`` is the same pipeline with ``device_canvas=(240, 320)``: the host samples,
decodes the crop and batches packed bytes, and the flip, resize to 224x224 and scaling run on
the accelerator in the training step (``video_ops.crop_resize_on_device``). Its host rate is what
feeds an accelerator; ``device_augment_ms_per_clip`` is that device half's cost on the device
TensorFlow picks here (this machine's CPU when no accelerator is present, where it is far
slower than the host path: there it only shows the op runs, not what an accelerator pays).

``kernel_ms_per_clip`` times, on one clip and one core, the TensorFlow kernels the pipeline
cannot avoid next to the bare decode (cropped decode of a typical 75 %-area box, the scaling to
[0, 1], the bilinear resize to 224x224, the flip), and ``kernel_estimate_ratio`` is the ratio
those kernels alone would allow: full decode / (cropped decode + scaling + resize + half a flip),
before any reading, parsing or batching. It is an estimate from isolated kernels, not a bound.

    python benchmarks/input_pipeline.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np


def _make_records(folder: Path, clips: int, frames: int) -> tuple[str, list[list[bytes]]]:
    """Write ``clips`` records of ``frames`` textured 320x240 JPEG frames; return (glob, frames)."""
    import tensorflow as tf

    from model.data import schema
    from model.data.video_io import encode_jpeg

    rng = np.random.default_rng(0)
    coarse = rng.uniform(0, 255, size=(70, 90, 3))
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    encoded_clips = []
    with tf.io.TFRecordWriter(str(folder / "train-00000-of-00001.tfrecord")) as writer:
        for clip in range(clips):
            jpegs = []
            for t in range(frames):
                y, x = (clip * 7 + t) % 300, (clip * 5 + 2 * t) % 400
                image = texture[y % 300 : y % 300 + 240, x % 400 : x % 400 + 320]
                noisy = image + rng.normal(0, 4, size=image.shape)
                jpegs.append(encode_jpeg(np.clip(noisy, 0, 255).astype(np.uint8), 90))
            encoded_clips.append(jpegs[:32])
            writer.write(
                schema.serialize_clip(
                    jpegs,
                    label_index=clip % 4,
                    label_name=f"c{clip % 4}",
                    example_id=f"clip{clip}",
                    data_path="memory",
                    height=240,
                    width=320,
                    frame_rate=25.0,
                    timestamps_us=[40_000 * t for t in range(frames)],
                )
            )
    return str(folder / "train-*.tfrecord"), encoded_clips


def _kernel_costs() -> dict[str, float]:
    """Milliseconds per clip of each image kernel on one core (best of 3 rounds).

    Runs in a child process (``--kernels``) whose TensorFlow uses one thread, so that wall time
    is the CPU cost and no thread pool's spinning is counted.
    """
    import tensorflow as tf

    from model.data import video_ops

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        _, encoded = _make_records(Path(tmp), 1, 32)
    frames = tf.constant(encoded[0])
    window = tf.constant([16, 22, 208, 277])  # a typical box: 75 % of the 240x320 area
    cropped = video_ops.decode_jpegs(frames, crop_window=window)
    scaled = tf.cast(cropped, tf.float32) * (1.0 / 255.0)
    kernels = {
        "decode_full": lambda: video_ops.decode_jpegs(frames),
        "decode_crop": lambda: video_ops.decode_jpegs(frames, crop_window=window),
        "scale": lambda: tf.cast(cropped, tf.float32) * (1.0 / 255.0),
        "resize": lambda: video_ops.resize(scaled, 224, 224),
        "flip": lambda: video_ops.flip_left_right(cropped),
    }
    costs = {}
    for name, kernel in kernels.items():
        function = tf.function(kernel)
        function()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(10):
                function()  # eager CPU execution is synchronous
            best = min(best, (time.perf_counter() - start) / 10 * 1e3)
        costs[name] = round(best, 2)
    return costs


def _device_half_ms_per_clip(dataset, dtype: str) -> dict[str, object]:
    """Milliseconds per clip of ``crop_resize_on_device`` on TensorFlow's default device."""
    import tensorflow as tf

    from model.data import video_ops

    inputs, _ = next(iter(dataset))
    step = tf.function(
        lambda clips: video_ops.crop_resize_on_device(
            clips["frames"], clips["crop"], image_size=224, dtype=dtype
        ),
        jit_compile=True,
    )
    step(inputs).numpy()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        step(inputs).numpy()
        best = min(best, time.perf_counter() - start)
    device = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    batch = int(inputs["crop"].shape[0])
    return {"device": device[0].name, "ms": round(best / batch * 1e3, 2)}


def _clips_per_second(dataset, batch_size: int, batches: int) -> float:
    iterator = iter(dataset)
    for _ in range(3):  # warm-up: graph tracing and autotuning
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24, help="distinct clips in the records")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternate bare/pipeline runs; best of each"
    )
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--kernels", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.kernels:
        print(json.dumps(_kernel_costs()))
        return
    import tensorflow as tf

    from model.data.input import make_dataset

    with tempfile.TemporaryDirectory() as tmp:
        pattern, encoded = _make_records(Path(tmp), args.clips, 64)
        common = {
            "num_classes": 4,
            "num_frames": 32,
            "image_size": 224,
            "batch_size": args.batch_size,
            "training": True,
            "shuffle_buffer": 16,
            "seed": 0,
        }
        pipeline = make_dataset(pattern, dtype=args.dtype, **common)
        # The same sampling and crops; the dtype applies on the device there.
        device_pipeline = make_dataset(pattern, device_canvas=(240, 320), **common)

        def _decode(frames: tf.Tensor) -> tf.Tensor:
            return tf.map_fn(
                lambda data: tf.io.decode_jpeg(data, channels=3),
                frames,
                fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
                parallel_iterations=8,
            )

        bare = (
            tf.data.Dataset.from_tensor_slices(tf.constant(encoded))
            .repeat()
            .map(_decode, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(args.batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
        # Alternate the two and keep the best of each: on a 2-core machine a stray process
        # during one run would otherwise decide the ratio.
        pipeline_rates, bare_rates, device_rates = [], [], []
        for _ in range(args.rounds):
            bare_rates.append(_clips_per_second(bare, args.batch_size, args.batches))
            pipeline_rates.append(_clips_per_second(pipeline, args.batch_size, args.batches))
            device_rates.append(_clips_per_second(device_pipeline, args.batch_size, args.batches))
        pipeline_rate, bare_rate, device_rate = (
            max(pipeline_rates),
            max(bare_rates),
            max(device_rates),
        )
        device_ms = _device_half_ms_per_clip(device_pipeline, args.dtype)
    child = subprocess.run(
        [sys.executable, __file__, "--kernels"], check=True, capture_output=True, text=True
    )
    kernels = json.loads(child.stdout.strip().splitlines()[-1])
    # Half the clips are flipped.
    floor = kernels["decode_crop"] + kernels["scale"] + kernels["resize"] + kernels["flip"] / 2
    result = {
        "benchmark": "input_pipeline",
        "clip": f"32x224x224 {args.dtype} from 320x240 JPEG q90",
        "pipeline_clips_per_s": round(pipeline_rate, 2),
        "bare_decode_clips_per_s": round(bare_rate, 2),
        "ratio": round(pipeline_rate / bare_rate, 3),
        "device_pipeline_host_clips_per_s": round(device_rate, 2),
        "ratio_device_augmentation": round(device_rate / bare_rate, 3),
        "device_augment_ms_per_clip": device_ms,
        "kernel_ms_per_clip": kernels,
        "kernel_estimate_ratio": round(kernels["decode_full"] / floor, 3),
        "batch_size": args.batch_size,
        "batches": args.batches,
        "rounds": args.rounds,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
