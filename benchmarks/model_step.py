"""Median forward+backward SGD step time of an AssembleNet preset on the local device.

Example:
    python benchmarks/model_step.py --preset assemblenet50 --batch 2 --frames 8 --size 112 \
        --steps 5 --json

Random clips and labels; the first (tracing) step is excluded. The reference (Model Garden,
tf_keras) takes about 1.4 s per step on a 2-core x86-64 CPU at these settings;
``benchmarks/reference_step.py`` times it the same way on this machine. Besides the wall
times the JSON line holds the median process CPU time per step (all threads), which is the more
stable figure on a machine shared with other jobs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("model_step")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="assemblenet50")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--classes", type=int, default=101)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps (compilation)")
    parser.add_argument(
        "--jit",
        choices=("on", "off"),
        default="off",
        help="XLA jit_compile of the step (off by default: oneDNN convs beat XLA:CPU here)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import keras
    import numpy as np
    import tensorflow as tf

    from model.assemblenet import build_model, count_params
    from model.train_lib import MomentumSGD

    model = build_model(
        args.preset, num_classes=args.classes, num_frames=args.frames, image_size=args.size
    )
    # The training code's SGD (Keras's update rule, fused into one op per variable).
    optimizer = MomentumSGD(learning_rate=1e-3, momentum=0.9)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((args.batch, args.frames, args.size, args.size, 3), "float32"))
    inputs: object = x
    if model.assemblenet_spec.use_object_input:
        shape = (
            args.batch,
            args.frames,
            args.size,
            args.size,
            model.assemblenet_spec.num_object_classes,
        )
        inputs = {"image": x, "object": tf.constant(rng.random(shape, "float32"))}
    y = tf.one_hot(rng.integers(0, args.classes, args.batch), args.classes)

    @tf.function(jit_compile=args.jit == "on", reduce_retracing=True)
    def step(inputs: object, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(inputs, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    # Wall time is what the goal is stated in; process CPU time (all threads) is reported too
    # because on a shared machine it is much less sensitive to other jobs than wall time.
    times, cpu_times = [], []
    for i in range(args.warmup + args.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        float(step(inputs, y))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if i >= args.warmup:
            times.append(elapsed)
            cpu_times.append(cpu)
        log.info("step %d/%d: %.3f s (cpu %.3f s)", i + 1, args.warmup + args.steps, elapsed, cpu)
    result = {
        "preset": args.preset,
        "batch": args.batch,
        "frames": args.frames,
        "size": args.size,
        "steps": args.steps,
        "jit": args.jit,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "median_cpu_s": statistics.median(cpu_times),
        "threads": os.cpu_count(),
        "params": count_params(model)["total"],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
