"""Layer maths: Representation Flow recovers motion, temporal conv keeps clips apart, fusion."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model.layers import (
    BatchNorm,
    ClassifierHead,
    ConnectionFusion,
    RepresentationFlow,
    TemporalConv,
)


def _texture(size: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random texture, periodic so that np.roll translates it cleanly."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.random((size, size)))
    freq = np.fft.fftfreq(size)
    lowpass = np.exp(-(freq[:, None] ** 2 + freq[None, :] ** 2) / (2 * 0.06**2))
    return np.real(np.fft.ifft2(spectrum * lowpass)).astype("float32")


def _translating_clip(dx: int, dy: int, frames: int = 4, crop: int = 48) -> np.ndarray:
    """(frames, crop, crop, 3) in [0, 1]: the texture moves dx px right and dy px down a frame."""
    base = _texture()
    base = (base - base.min()) / (base.max() - base.min())
    out = []
    for t in range(frames):
        moved = np.roll(np.roll(base, t * dy, axis=0), t * dx, axis=1)
        out.append(moved[24 : 24 + crop, 24 : 24 + crop])
    return np.repeat(np.stack(out)[..., None], 3, axis=-1)


@pytest.mark.parametrize(("dx", "dy"), [(2, 0), (-2, 0), (0, 2), (0, -2)])
def test_representation_flow_recovers_motion_direction(dx: int, dy: int) -> None:
    layer = RepresentationFlow(num_frames=4, num_iter=40)
    flow = np.asarray(layer(_translating_clip(dx, dy)))  # (4, 48, 48, 2)
    assert flow.shape == (4, 48, 48, 2)
    inner = flow[:, 8:-8, 8:-8]  # away from the zero-padded borders
    u, v = float(inner[..., 0].mean()), float(inner[..., 1].mean())
    for true, est in ((dx, u), (dy, v)):
        if true:
            assert np.sign(est) == np.sign(true), (dx, dy, u, v)
            assert abs(est) > 0.2
        else:
            assert abs(est) < 0.25 * max(abs(u), abs(v)), (dx, dy, u, v)


def test_representation_flow_is_zero_for_a_still_clip_and_duplicates_last_frame() -> None:
    still = np.repeat(_translating_clip(0, 0, frames=3)[:1], 3, axis=0)
    flow = np.asarray(RepresentationFlow(num_frames=3, num_iter=5)(still))
    assert np.abs(flow).max() < 1e-3
    moving = np.asarray(RepresentationFlow(num_frames=3, num_iter=5)(_translating_clip(1, 0, 3)))
    np.testing.assert_array_equal(moving[2], moving[1])
    layer = RepresentationFlow(num_frames=3)
    layer.build((None, 8, 8, 3))
    assert sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights) == 16
    assert layer.trainable_weights == []


def test_temporal_conv_never_mixes_clips() -> None:
    t, size = 4, 3
    layer = TemporalConv(2, kernel_size=3, dilation_rate=2, num_frames=t)
    clip_a = np.random.default_rng(0).random((t, size, size, 2)).astype("float32")
    alone = np.asarray(layer(clip_a))
    # Clip b is huge: if padding mixed clips, clip a's output would change.
    both = np.asarray(layer(np.concatenate([clip_a, 1e3 * np.ones_like(clip_a)])))
    np.testing.assert_allclose(both[:t], alone, rtol=1e-5)
    # Dilation 2, 'same': frame 0 sees frames 0 and 2 only (kernel taps -2, 0, +2).
    k = np.asarray(layer.kernel)[:, 0]  # (3, c_in, c_out)
    expected = clip_a[0] @ k[1] + clip_a[2] @ k[2]
    np.testing.assert_allclose(alone[0], expected, rtol=1e-4, atol=1e-5)


def _shift_in_time(x: np.ndarray, offset: int) -> np.ndarray:
    """x[:, t + offset] for every t, zero where t + offset is outside the clip ((B, T, ...))."""
    out = np.zeros_like(x)
    t = x.shape[1]
    if abs(offset) < t:
        if offset >= 0:
            out[:, : t - offset] = x[:, offset:]
        else:
            out[:, -offset:] = x[:, : t + offset]
    return out


@pytest.mark.parametrize(
    ("frames", "kernel_size", "dilation"), [(6, 3, 1), (6, 3, 2), (4, 3, 4), (8, 5, 4)]
)
def test_temporal_conv_gradients_match_the_definition(
    frames: int, kernel_size: int, dilation: int
) -> None:
    # The TensorFlow path has a hand-written kernel gradient (matrix products per tap); check
    # the values and both gradients against the convolution written out in numpy. (4, 3, 4) and
    # (8, 5, 4) have taps that fall entirely outside the clip.
    import tensorflow as tf

    rng = np.random.default_rng(3)
    batch, h, w, c_in, c_out = 2, 2, 3, 4, 5
    layer = TemporalConv(c_out, kernel_size, dilation, frames)
    x = rng.normal(size=(batch * frames, h, w, c_in)).astype("float32")
    upstream = rng.normal(size=(batch * frames, h, w, c_out)).astype("float32")
    layer.build(x.shape)

    @tf.function
    def forward_backward(x: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * upstream)
        return [y, *tape.gradient(loss, [x, layer.kernel.value])]

    y, dx, dkernel = (np.asarray(v) for v in forward_backward(tf.constant(x)))
    kernel = np.asarray(layer.kernel)[:, 0]  # (k, c_in, c_out)
    x5 = x.reshape(batch, frames, h * w, c_in)
    g5 = upstream.reshape(batch, frames, h * w, c_out)
    offsets = [(tap - kernel_size // 2) * dilation for tap in range(kernel_size)]
    expected_y = sum(_shift_in_time(x5, o) @ kernel[i] for i, o in enumerate(offsets))
    expected_dx = sum(_shift_in_time(g5, -o) @ kernel[i].T for i, o in enumerate(offsets))
    expected_dk = np.stack([np.einsum("btpc,btpf->cf", _shift_in_time(x5, o), g5) for o in offsets])
    np.testing.assert_allclose(y, expected_y.reshape(y.shape), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, expected_dx.reshape(dx.shape), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dkernel[:, 0], expected_dk, rtol=1e-4, atol=1e-4)


def test_fusion_pools_weights_groups_and_projects() -> None:
    rng = np.random.default_rng(1)
    big = rng.random((2, 8, 8, 4)).astype("float32")  # pooled 8 -> 4 with r = 2
    small = rng.random((2, 4, 4, 8)).astype("float32")
    other = rng.random((2, 4, 4, 4)).astype("float32")
    layer = ConnectionFusion(edge_weights=[0.25, 0.5, 0.75])
    out = np.asarray(layer([big, small, other]))
    assert out.shape == (2, 4, 4, 8)
    assert not layer.edge_logits.trainable
    pooled = big.reshape(2, 4, 2, 4, 2, 4).max(axis=(2, 4))
    proj = np.asarray(layer.projections["4"])[0, 0]  # (4, 8): the 4-channel group
    expected = (0.25 * pooled + 0.75 * other) @ proj + 0.5 * small
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    learn = ConnectionFusion()
    learn([big, small, other])
    assert learn.edge_logits.trainable
    np.testing.assert_allclose(keras.ops.sigmoid(learn.edge_logits), 0.5, atol=0.02)
    concat = ConnectionFusion(combine="concat")
    assert np.asarray(concat([big, small])).shape == (2, 4, 4, 12)


def test_peer_attention_logits_are_trainable() -> None:
    rng = np.random.default_rng(2)
    edges = [rng.random((3, 4, 4, 8)).astype("float32") for _ in range(2)]
    peers = [rng.random((3, 16)).astype("float32") for _ in range(3)]
    layer = ConnectionFusion(attention_mode="peer", num_peers=3)
    out = layer(edges + peers)
    assert tuple(out.shape) == (3, 4, 4, 8)
    names = {w.path.split("/")[-1] for w in layer.trainable_weights}
    assert {"peer_logits_0", "peer_logits_1", "edge_logits"} <= names


def test_head_max_pools_predictions_in_float32() -> None:
    x = np.random.default_rng(3).random((2 * 4, 2, 2, 5)).astype("float32")
    head = ClassifierHead(3, num_frames=4, max_pool_predictions=True)
    z = np.asarray(head([x]))
    assert z.shape == (2, 3)
    feats = x.mean(axis=(1, 2)).reshape(2, 4, 5)
    per_frame = feats @ np.asarray(head.kernel) + np.asarray(head.bias)
    a = np.exp(per_frame / 2.0)
    a /= a.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(z, (a * per_frame).sum(axis=1), rtol=1e-5)


def test_fused_batch_norm_matches_keras() -> None:
    x = 3.0 * np.random.default_rng(4).random((6, 5, 5, 4)).astype("float32") + 1.0
    fused = BatchNorm(momentum=0.9, epsilon=1e-5)
    plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, rtol=1e-5)
    # The fused kernel's batch variance is Bessel-corrected (n = 150 values per channel).
    batch_var = x.reshape(-1, 4).var(axis=0, ddof=1)
    np.testing.assert_allclose(fused.moving_variance, 0.9 + 0.1 * batch_var, rtol=1e-5)
    assert len(fused.weights) == len(plain.weights) == 4
    np.testing.assert_allclose(
        fused(x),
        (x - fused.moving_mean) / np.sqrt(np.asarray(fused.moving_variance) + 1e-5),
        rtol=1e-4,
    )
