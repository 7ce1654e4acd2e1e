"""Median train-step time of the Model Garden reference AssembleNet-50, for `model_step.py`.

The speed goal of this project is stated against the reference implementation (TensorFlow Model
Garden, ``official/projects/assemblenet``, tf_keras) *on the same machine*. This script times the
reference exactly like ``benchmarks/model_step.py`` times ours (same batch, frames, size, classes,
SGD with momentum 0.9, categorical cross-entropy on logits, ``tf.function`` without XLA, one
untimed warm-up step) and prints the same JSON keys, so the two lines can be divided.

It does not run in this project's environment: the reference needs tf_keras and Model Garden,
and its code is not part of this repository. Set up a separate environment once::

    uv venv -p 3.11 /tmp/refvenv
    VIRTUAL_ENV=/tmp/refvenv uv pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 \\
        tensorflow-datasets==4.9.10 pyyaml gin-config scipy pycocotools pillow \\
        opencv-python-headless matplotlib
    VIRTUAL_ENV=/tmp/refvenv uv pip install --no-deps tf-models-official==2.20.0

The tf-models-official wheel leaves out ``projects/assemblenet``; take that folder from a
checkout of github.com/tensorflow/models (``modeling/`` at commit 0ca414d5, which uses tf_keras
like the wheel; ``configs/`` at commit 467fbf7e, whose dataclass defaults Python 3.11 accepts)
and pass it with ``--assemblenet-dir``::

    /tmp/refvenv/bin/python benchmarks/reference_step.py \\
        --assemblenet-dir models/official/projects/assemblenet --json

The model is the reference's ``assemblenet_ucf101`` experiment (AssembleNet-50 structure with its
published connection weights), built by its own ``build_assemblenet_model``, with plain (not
synchronised) batch norm as on one device.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _register_reference_package(folder: Path) -> None:
    """Make ``official.projects.assemblenet`` resolve to ``folder`` (modeling/, configs/)."""
    for sub in (
        "modeling/assemblenet.py",
        "modeling/rep_flow_2d_layer.py",
        "configs/assemblenet.py",
    ):
        if not (folder / sub).is_file():
            sys.exit(f"error: {folder / sub} not found (see --help for where it comes from)")
    import official.projects  # the installed tf-models-official

    spec = importlib.machinery.ModuleSpec("official.projects.assemblenet", None, is_package=True)
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(folder)]
    sys.modules[spec.name] = package
    official.projects.assemblenet = package  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--assemblenet-dir", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--classes", type=int, default=101)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    _register_reference_package(args.assemblenet_dir.resolve())

    import numpy as np
    import tensorflow as tf
    import tf_keras
    from official.core import exp_factory
    from official.projects.assemblenet.configs import assemblenet as _configs  # noqa: F401
    from official.projects.assemblenet.modeling import assemblenet

    experiment = exp_factory.get_exp_config("assemblenet_ucf101")
    model_config = experiment.task.model
    model_config.backbone.assemblenet.num_frames = args.frames
    model_config.norm_activation.use_sync_bn = False  # one device, like model_step.py
    model = assemblenet.build_assemblenet_model(
        input_specs=tf_keras.layers.InputSpec(shape=[None, args.frames, args.size, args.size, 3]),
        model_config=model_config,
        num_classes=args.classes,
    )
    optimizer = tf_keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
    loss_fn = tf_keras.losses.CategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((args.batch, args.frames, args.size, args.size, 3), "float32"))
    y = tf.one_hot(rng.integers(0, args.classes, args.batch), args.classes)

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model({"image": x}, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    times, cpu_times = [], []
    for i in range(args.warmup + args.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        float(step(x, y))
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    result = {
        "implementation": "model-garden-reference",
        "batch": args.batch,
        "frames": args.frames,
        "size": args.size,
        "steps": args.steps,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "median_cpu_s": statistics.median(cpu_times),
        "threads": os.cpu_count(),
        "params": int(model.count_params()),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
