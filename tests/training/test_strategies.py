"""The multi-device paths run for real on TensorFlow's CPU stand-ins, in a fresh process (logical
devices must be configured before TensorFlow initialises its runtime)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

DRIVER = textwrap.dedent(
    """
    import json, sys
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from model import train_lib
    from model.config import load_config
    from model.errors import ConfigError

    out = {}
    cfg = load_config("synthetic", {
        "train.batch_size": 4, "train.steps": 6, "train.steps_per_execution": 2,
        "train.checkpoint_every": 2, "train.log_every": 2, "train.warmup_steps": 0,
        "model.sync_batch_norm": "true", "train.distribution": "mirrored",
    })
    devices, policy = train_lib.prepare_devices(cfg)
    out["kind"], out["replicas"], out["policy"] = devices.kind, devices.num_replicas, policy
    out["strategy"] = type(devices.strategy).__name__
    out["accelerated"] = devices.accelerated
    try:
        bad = load_config("synthetic", {"train.batch_size": 3, "train.distribution": "mirrored"})
        train_lib.prepare_devices(bad)
    except ConfigError as error:
        out["odd_batch_error"] = str(error)

    x = np.random.default_rng(0).random((32, 2, 6, 6, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[np.arange(32) % 2]
    def dataset(offset):
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(32, seed=offset)
        return ds.repeat().batch(4, drop_remainder=True)
    with devices.strategy.scope():
        inp = keras.Input((2, 6, 6, 3))
        h = keras.layers.Conv3D(4, 3, padding="same")(inp)
        h = keras.layers.BatchNormalization()(h)
        logits = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling3D()(h))
        model = keras.Model(inp, logits)
        out["sync_bn_layers"] = train_lib.synchronize_batch_norm(model)
        spe = train_lib.effective_steps_per_execution(cfg.train, devices)
        out["steps_per_execution"] = spe
        train_lib.compile_for_training(model, cfg.train, steps_per_execution=spe)
    result = train_lib.run_training_loop(
        model, dataset, devices=devices, train=cfg.train, checkpoint_dir=sys.argv[1] + "/ckpt"
    )
    out["final_step"], out["restored"] = result.final_step, result.data_position_restored
    out["loss_finite"] = bool(np.isfinite(result.last_logs["loss"]))

    # A second job on the same directory resumes the mirrored iterator and stops at once.
    again = train_lib.run_training_loop(
        model, dataset, devices=devices, train=cfg.train, checkpoint_dir=sys.argv[1] + "/ckpt"
    )
    out["resumed_initial"] = again.initial_step
    out["resumed_restored"] = again.data_position_restored

    # Spatial augmentation on the replicas: packed byte canvases and crops are split per replica.
    from model.data import video_ops
    canvases = np.random.default_rng(1).integers(0, 256, (32, 2, 8, 8, 3), dtype=np.uint8)
    crops = np.tile(np.array([[8, 8, 0], [6, 7, 1]], np.int32), (16, 1))
    def device_dataset(offset):
        inputs = {"frames": video_ops.pack_bytes(canvases), "crop": crops}
        ds = tf.data.Dataset.from_tensor_slices((inputs, y)).shuffle(32, seed=offset)
        return ds.repeat().batch(4, drop_remainder=True)
    with devices.strategy.scope():
        trainee = train_lib.with_device_augmentation(
            model, num_frames=2, image_size=6, clip_dtype="float32"
        )
        train_lib.compile_for_training(trainee, cfg.train, steps_per_execution=spe)
    augmented = train_lib.run_training_loop(
        trainee, device_dataset, devices=devices, train=cfg.train,
        checkpoint_dir=sys.argv[1] + "/device", checkpoint_model=model,
    )
    out["device_final_step"] = augmented.final_step
    out["device_loss_finite"] = bool(np.isfinite(augmented.last_logs["loss"]))

    one = train_lib.select_strategy("cpu")
    out["one_device"] = type(one.strategy).__name__
    # A TPU VM request on a host without a TPU: TPUClusterResolver('local') fails; the user
    # must get a ConfigError, not a runtime traceback.
    try:
        train_lib.select_strategy("tpu", tpu="local")
    except ConfigError as error:
        out["tpu_error"] = str(error)
    print("RESULT " + json.dumps(out))
    """
)


def test_mirrored_and_one_device_strategies_on_logical_cpus(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[2],
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert lines, proc.stdout[-3000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    assert out["strategy"] == "MirroredStrategy"
    assert (out["kind"], out["replicas"], out["policy"]) == ("mirrored", 2, "float32")
    assert out["accelerated"] is False  # replicas on logical CPUs: `auto` augments on the host
    assert "divisible by the 2 replicas" in out["odd_batch_error"]
    assert out["sync_bn_layers"] == 1
    assert out["final_step"] == 6
    assert out["loss_finite"]
    assert out["resumed_initial"] == 6
    # Distributed iterators are not trackable: the resumed job reseeds its input instead.
    assert out["resumed_restored"] is False
    assert out["steps_per_execution"] == 1  # Keras's multi-step loop fails under Mirrored
    assert (out["device_final_step"], out["device_loss_finite"]) == (6, True)
    assert out["one_device"] == "OneDeviceStrategy"
    assert "no TPU could be reached at 'local'" in out["tpu_error"]
