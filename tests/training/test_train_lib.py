"""Learning-rate schedules and device selection, with TensorFlow's CPU stand-ins."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from model import train_lib
from model.config import load_config
from model.errors import ConfigError


def _lr(schedule: train_lib.WarmupSchedule, step: int) -> float:
    return float(schedule(step))


def test_exponential_staircase_with_warmup_matches_the_reference_formula() -> None:
    cfg = load_config("ucf101_assemblenet50")
    schedule = train_lib.learning_rate_schedule(cfg.train)
    # Reference: 0.008 * 0.96 ** floor(step / 1024) after a 50-step linear warmup from 0.
    assert _lr(schedule, 0) == 0.0
    assert _lr(schedule, 25) == pytest.approx(0.008 * 25 / 50)
    for step in (50, 1023, 1024, 5000, 89999):
        assert _lr(schedule, step) == pytest.approx(0.008 * 0.96 ** (step // 1024), rel=1e-5)


def test_cosine_with_warmup() -> None:
    cfg = load_config("ucf101_assemblenet_plus50")
    schedule = train_lib.learning_rate_schedule(cfg.train)
    total, warm = 14900, 745
    assert _lr(schedule, 0) == 0.0
    expected_at_warm = 0.8 * 0.5 * (1 + math.cos(math.pi * warm / total))
    assert _lr(schedule, 300) == pytest.approx(expected_at_warm * 300 / warm, rel=1e-5)
    assert _lr(schedule, 7450) == pytest.approx(0.8 * 0.5, rel=1e-5)
    assert _lr(schedule, total) == pytest.approx(0.0, abs=1e-7)
    # Serialisable: a saved model.keras carries its schedule.
    clone = train_lib.WarmupSchedule.from_config(schedule.get_config())
    assert _lr(clone, 1234) == _lr(schedule, 1234)


def test_default_strategy_on_a_plain_cpu_host() -> None:
    devices = train_lib.select_strategy("auto", environ={})
    assert devices.kind == "default"
    assert devices.num_replicas == 1
    assert not devices.on_tpu
    assert not devices.accelerated
    one = train_lib.select_strategy("cpu")
    assert isinstance(one.strategy, tf.distribute.OneDeviceStrategy)
    assert not one.accelerated
    with pytest.raises(ConfigError, match=r"no GPU"):
        train_lib.select_strategy("gpu")


def test_tpu_vm_environment_is_detected() -> None:
    assert train_lib.tpu_attached({"TPU_ACCELERATOR_TYPE": "v3-8"})
    assert train_lib.tpu_attached({"TPU_NAME": "node-1"})
    assert not train_lib.tpu_attached({"TPU_NAME": ""})
    assert not train_lib.tpu_attached({})


def test_sync_batch_norm_default_follows_the_device() -> None:
    cfg = load_config("synthetic")
    cpu = train_lib.Devices(tf.distribute.get_strategy(), "default", 1)
    tpu = train_lib.Devices(tf.distribute.get_strategy(), "tpu", 8)
    assert not train_lib.use_sync_batch_norm(cfg, cpu)
    assert train_lib.use_sync_batch_norm(cfg, tpu)
    forced = load_config("synthetic", {"model.sync_batch_norm": "true"})
    assert train_lib.use_sync_batch_norm(forced, cpu)

    import keras

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    assert train_lib.synchronize_batch_norm(model) == 1
    assert model.layers[-1].get_config()["synchronized"] is True
    out = model(np.ones((2, 4, 4, 3), "float32"), training=True)
    assert out.shape == (2, 4, 4, 3)


def test_input_position_is_checkpointed_only_when_the_pipeline_can_be_saved(
    tmp_path: Path,
) -> None:
    plain = tf.data.Dataset.range(100).shuffle(10, seed=0).map(lambda x: x * 2)
    iterator = iter(plain)
    assert train_lib._input_checkpointable(plain, iterator)
    # What the check promises: that iterator really saves and restores its position.
    next(iterator)
    path = tf.train.Checkpoint(iterator=iterator).write(str(tmp_path / "ckpt"))
    expected = [int(next(iterator)) for _ in range(3)]
    restored = iter(plain)
    tf.train.Checkpoint(iterator=restored).read(path).assert_consumed()
    assert [int(next(restored)) for _ in range(3)] == expected

    python_op = tf.data.Dataset.range(10).map(
        lambda x: tf.py_function(lambda v: v + 1, [x], tf.int64)
    )
    assert not train_lib._input_checkpointable(python_op, iter(python_op))
    # A distributed iterator of a multi-replica strategy is not trackable at all.
    assert not train_lib._input_checkpointable(plain, object())
