"""The fused momentum SGD is Keras's SGD, update for update, alone and under a strategy."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from model.train_lib import MomentumSGD


def _train(optimizer_cls: type, nesterov: bool, strategy: tf.distribute.Strategy) -> list:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.normal(size=(16, 3)).astype("float32")
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5), keras.layers.Dense(3)])
        schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.9)
        optimizer = optimizer_cls(learning_rate=schedule, momentum=0.8, nesterov=nesterov)
        model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    return [*model.get_weights(), *(v.numpy() for v in optimizer.momentums)]


@pytest.mark.parametrize("nesterov", [False, True])
def test_same_updates_as_keras_sgd(nesterov: bool) -> None:
    strategy = tf.distribute.get_strategy()
    fused = _train(MomentumSGD, nesterov, strategy)
    keras_sgd = _train(keras.optimizers.SGD, nesterov, strategy)
    assert len(fused) == len(keras_sgd) == 8
    for a, b in zip(fused, keras_sgd, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The momentum slots moved, so the comparison is not between two untouched models.
    assert all(np.abs(m).max() > 0 for m in fused[4:])


def test_same_updates_under_mirrored_strategy() -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    fused = _train(MomentumSGD, True, strategy)
    keras_sgd = _train(keras.optimizers.SGD, True, tf.distribute.get_strategy())
    for a, b in zip(fused, keras_sgd, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_config_round_trip() -> None:
    optimizer = MomentumSGD(learning_rate=0.05, momentum=0.9, nesterov=True)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, MomentumSGD)
    assert restored.get_config() == optimizer.get_config()
