"""Custom Keras 3 layers of AssembleNet / AssembleNet++.

The backbone works on time-folded 4-D tensors ``(B*T, h, w, c)`` like the reference; the layers
here fold/unfold time where they need it, so ``num_frames`` is a static argument. Every layer is
registered as serializable under the ``assemblenet`` package and has a complete ``get_config``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from model.structures import logit

_PACKAGE = "assemblenet"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FoldTime(keras.layers.Layer):
    """``(B, T, H, W, C) -> (B*T, H, W, C)``: puts time into the batch like the reference."""

    def call(self, inputs: Any) -> Any:
        shape = ops.shape(inputs)
        return ops.reshape(inputs, (-1, *shape[2:]))

    def compute_output_shape(self, input_shape: Sequence[Any]) -> tuple[Any, ...]:
        b, t = input_shape[0], input_shape[1]
        bt = b * t if b is not None and t is not None else None
        return (bt, *input_shape[2:])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BatchNorm(keras.layers.BatchNormalization):
    """Keras BatchNormalization that uses TensorFlow's fused kernel when it can.

    Same weights, config and maths as ``keras.layers.BatchNormalization`` (the reference's
    tf_keras BN is fused too). On the TensorFlow backend, for 4-D float32 channels-last inputs,
    the normalisation runs as one ``FusedBatchNormV3`` op (and one gradient op), which is about
    2.5x cheaper on CPU than the unfused moments/normalize ops that Keras 3 emits; the moving
    statistics follow ``moving = momentum * moving + (1 - momentum) * batch`` with the kernel's
    Bessel-corrected batch variance, as tf_keras does. Anything else falls back to Keras.
    """

    def _fusable(self, inputs: Any) -> bool:
        return (
            keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and inputs.dtype == "float32"
            and self.center
            and self.scale
        )

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if mask is not None or not self._fusable(inputs):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # only on the TensorFlow backend, on concrete tensors

        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True
            )
            decay = 1.0 - self.momentum
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * decay)
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * decay)
            return y
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            self.gamma,
            self.beta,
            mean=self.moving_mean,
            variance=self.moving_variance,
            epsilon=self.epsilon,
            is_training=False,
        )
        return y


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RepresentationFlow(keras.layers.Layer):
    """Differentiable TV-L1 optical flow inside the network (Piergiovanni & Ryoo, CVPR 2019).

    Computed once from the RGB frames and shared by all flow stems. The algorithm is the
    reference's (section 2 of docs/assemblenet.md): channel mean, batch-global rescale to
    [0, 255], then ``num_iter`` TV-L1 iterations between consecutive frames with fixed gradient,
    divergence and forward-gradient filters. The 2-3 tap filters are applied as shifted slices
    (exactly what a 'SAME' conv with that kernel computes) which is much cheaper than conv2d on
    one channel; the filter taps are still the layer's (non-trainable) weights.

    Input ``(B*T, H, W, C)`` frames; output ``(B*T, H, W, 2)`` flow (u_x, u_y), with the last
    flow frame duplicated so every frame has one. Computes in float32 whatever the policy.

    Args:
        num_frames: T, static.
        num_iter: TV-L1 iterations (40 in AssembleNet, 20 in the lite model).
        theta, lam, tau: TV-L1 hyper-parameters.
    """

    def __init__(
        self,
        num_frames: int,
        num_iter: int = 40,
        theta: float = 0.3,
        lam: float = 0.15,
        tau: float = 0.25,
        **kwargs: Any,
    ) -> None:
        kwargs["dtype"] = "float32"  # 40 iterations of divisions are unsafe in bfloat16
        super().__init__(**kwargs)
        self.num_frames = num_frames
        self.num_iter = num_iter
        self.theta = theta
        self.lam = lam
        self.tau = tau

    def build(self, input_shape: Sequence[Any]) -> None:
        def const(name: str, values: list[float]) -> Any:
            return self.add_weight(
                name=name,
                shape=(len(values),) if len(values) > 1 else (),
                initializer=keras.initializers.Constant(values if len(values) > 1 else values[0]),
                trainable=False,
            )

        # 14 filter taps + lambda + tau = the reference's 16 non-trainable scalars.
        self.img_grad_x = const("img_grad_x", [-0.5, 0.0, 0.5])
        self.img_grad_y = const("img_grad_y", [-0.5, 0.0, 0.5])
        self.f_grad_x = const("f_grad_x", [-1.0, 1.0])
        self.f_grad_y = const("f_grad_y", [-1.0, 1.0])
        self.div_x = const("div_x", [-1.0, 1.0])
        self.div_y = const("div_y", [-1.0, 1.0])
        self.lam_w = const("lam", [self.lam])
        self.tau_w = const("tau", [self.tau])

    # Filters along an axis of a (..., H, W) tensor; axis -1 is x (width), -2 is y (height).
    @staticmethod
    def _pad(x: Any, axis: int, before: int, after: int) -> Any:
        pad = [[0, 0]] * len(x.shape)
        pad[axis] = [before, after]
        return ops.pad(x, pad)

    @staticmethod
    def _slice(x: Any, axis: int, start: int, stop: int | None) -> Any:
        index = [slice(None)] * len(x.shape)
        index[axis] = slice(start, stop)
        return x[tuple(index)]

    def _conv3(self, x: Any, k: Any, axis: int) -> Any:
        # 'SAME' 3-tap correlation: out[i] = k0*x[i-1] + k1*x[i] + k2*x[i+1], zero borders.
        p = self._pad(x, axis, 1, 1)
        return k[0] * self._slice(p, axis, 0, -2) + k[1] * x + k[2] * self._slice(p, axis, 2, None)

    def _conv2(self, x: Any, k: Any, axis: int) -> Any:
        # 'SAME' 2-tap correlation pads after: out[i] = k0*x[i] + k1*x[i+1], x[n] = 0.
        p = self._pad(x, axis, 0, 1)
        return k[0] * x + k[1] * self._slice(p, axis, 1, None)

    def _divergence(self, pa: Any, pb: Any) -> Any:
        # Shift pa right by one column (zero in front) and pb down by one row, then 2-tap conv.
        pa = self._pad(self._slice(pa, -1, 0, -1), -1, 1, 0)
        pb = self._pad(self._slice(pb, -2, 0, -1), -2, 1, 0)
        return self._conv2(pa, self.div_x, -1) + self._conv2(pb, self.div_y, -2)

    def call(self, inputs: Any) -> Any:
        t = self.num_frames
        h, w = inputs.shape[1], inputs.shape[2]
        x = ops.mean(ops.cast(inputs, "float32"), axis=-1)  # (B*T, H, W)
        lo, hi = ops.min(x), ops.max(x)
        span = hi - lo
        x = ops.where(span > 0, (x - lo) * (255.0 / ops.where(span > 0, span, 1.0)), x)
        x = ops.reshape(x, (-1, t, h, w))  # (B, T, H, W)
        img1, img2 = x[:, :-1], x[:, 1:]  # (B, T-1, H, W) each
        u1, u2 = self._solver()(img1, img2)
        flow = ops.stack([u1, u2], axis=-1)  # (B, T-1, H, W, 2)
        flow = ops.concatenate([flow, flow[:, -1:]], axis=1)  # duplicate the last flow frame
        return ops.reshape(flow, (-1, h, w, 2))  # (B*T, H, W, 2)

    def _solver(self) -> Any:
        """The TV-L1 solve, as one XLA-compiled function on the TensorFlow backend.

        The 40 iterations are hundreds of small element-wise ops on full-resolution frames;
        XLA fuses each iteration into a few loops, about 5x cheaper on CPU than running them
        op by op. It also sidesteps a Grappler bug: its AddOpsRewrite turns sums inside the
        while loop into temporary variables that collide (AlreadyExistsError) when a second
        tf.function (e.g. inference after a training step) runs the same loop.
        """
        if keras.backend.backend() != "tensorflow":
            return self._tv_l1
        if getattr(self, "_compiled_tv_l1", None) is None:
            import tensorflow as tf  # only on the TensorFlow backend

            self._compiled_tv_l1 = tf.function(self._tv_l1, jit_compile=True, autograph=False)
        return self._compiled_tv_l1

    def _tv_l1(self, img1: Any, img2: Any) -> tuple[Any, Any]:
        """``num_iter`` TV-L1 iterations from ``img1`` to ``img2`` (both ``(B, T-1, H, W)``)."""
        theta = abs(self.theta) + 1e-12
        lt = self.lam_w * theta
        taut = self.tau_w / theta

        gx = self._conv3(img2, self.img_grad_x, -1)
        gy = self._conv3(img2, self.img_grad_y, -2)
        g = gx * gx + gy * gy + 1e-12
        safe_g = ops.where(g > 1e-12, g, 1.0)
        rho_c = img2 - img1
        lt_g = lt * g

        def iteration(_: Any, state: tuple[Any, ...]) -> tuple[Any, ...]:
            u1, u2, p11, p12, p21, p22 = state
            rho = rho_c + gx * u1 + gy * u2 + 1e-12
            # One step coefficient c per pixel: v = u + c * grad (thresholding of TV-L1).
            c = ops.where(
                rho < -lt_g,
                lt,
                ops.where(rho > lt_g, -lt, ops.where(g > 1e-12, -rho / safe_g, 0.0)),
            )
            u1 = u1 + c * gx + theta * self._divergence(p11, p12)
            u2 = u2 + c * gy + theta * self._divergence(p21, p22)
            u1x = self._conv2(u1, self.f_grad_x, -1)
            u1y = self._conv2(u1, self.f_grad_y, -2)
            u2x = self._conv2(u2, self.f_grad_x, -1)
            u2y = self._conv2(u2, self.f_grad_y, -2)
            n1 = 1.0 + taut * ops.sqrt(u1x * u1x + u1y * u1y + 1e-12)
            n2 = 1.0 + taut * ops.sqrt(u2x * u2x + u2y * u2y + 1e-12)
            return (
                u1,
                u2,
                (p11 + taut * u1x) / n1,
                (p12 + taut * u1y) / n1,
                (p21 + taut * u2x) / n2,
                (p22 + taut * u2y) / n2,
            )

        # A loop op rather than 40 unrolled copies keeps the graph (and tracing) small.
        zeros = ops.zeros_like(img2)
        u1, u2, *_ = ops.fori_loop(0, self.num_iter, iteration, (zeros,) * 6)
        return u1, u2

    def compute_output_shape(self, input_shape: Sequence[Any]) -> tuple[Any, ...]:
        return (input_shape[0], input_shape[1], input_shape[2], 2)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("dtype", None)
        config.update(
            num_frames=self.num_frames,
            num_iter=self.num_iter,
            theta=self.theta,
            lam=self.lam,
            tau=self.tau,
        )
        return config


def _temporal_conv_tf(x: Any, kernel: Any, dilation: int) -> Any:
    """'Same' ``(k, 1)`` convolution of ``x`` ``(B, T, P, c)`` along T, with a cheaper gradient.

    The forward pass and the input gradient are TensorFlow's (oneDNN) convolutions. The kernel
    gradient is computed as k matrix products instead: for the tap at time offset ``o``,
    ``dW[tap] = sum_t x[t + o]^T dy[t]`` over the frames where ``t + o`` is inside the clip,
    i.e. one ``(B*T'*P, c)^T (B*T'*P, f)`` product of two contiguous slices. oneDNN's
    backward-weights kernel for these tall, thin (k, 1) convolutions is about 1.8x slower than
    its forward kernel; the products bring the whole temporal conv (forward + backward) down by
    about 30 % on CPU (``benchmarks/model_step.py``). Same values up to float rounding.
    """
    import tensorflow as tf  # only on the TensorFlow backend

    kernel = tf.convert_to_tensor(kernel)  # a read of the variable, never the variable itself
    k, num_frames = kernel.shape[0], x.shape[1]

    @tf.autograph.experimental.do_not_convert  # autograph would mangle the returned closure
    @tf.custom_gradient
    def conv(x: Any, kernel: Any) -> Any:
        y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME", dilations=(dilation, 1))

        def grad(dy: Any) -> tuple[Any, Any]:
            dx = tf.nn.conv2d_transpose(
                dy, kernel, tf.shape(x), strides=1, padding="SAME", dilations=(dilation, 1)
            )
            c, f = kernel.shape[2], kernel.shape[3]
            taps = []
            for tap in range(k):
                offset = (tap - k // 2) * dilation
                if abs(offset) >= num_frames:  # the tap only ever sees the zero padding
                    taps.append(tf.zeros((c, f), dy.dtype))
                    continue
                xs = x[:, max(offset, 0) : num_frames + min(offset, 0)]
                ds = dy[:, max(-offset, 0) : num_frames - max(offset, 0)]
                taps.append(
                    tf.matmul(tf.reshape(xs, (-1, c)), tf.reshape(ds, (-1, f)), transpose_a=True)
                )
            return dx, tf.reshape(tf.stack(taps), kernel.shape)

        return y, grad

    return conv(x, kernel)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TemporalConv(keras.layers.Layer):
    """Convolution along time only, on a time-folded tensor, without bias.

    ``(B*T, h, w, c) -> (B*T, h, w, filters)``. The tensor is viewed as ``(B, T, h*w, c)`` and a
    ``(kernel_size, 1)`` convolution with dilation ``(dilation_rate, 1)`` and 'same' zero padding
    in time is applied, so padding never mixes clips (the reference's (2+1)D temporal conv).

    Args:
        filters: output channels.
        kernel_size: temporal taps (3 in blocks, 5 in the RGB stem).
        dilation_rate: temporal dilation.
        num_frames: T, static.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        dilation_rate: int,
        num_frames: int,
        kernel_initializer: Any = "variance_scaling",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.dilation_rate = max(1, int(dilation_rate))
        self.num_frames = num_frames
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: Sequence[Any]) -> None:
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, 1, input_shape[-1], self.filters),
            initializer=self.kernel_initializer,
        )

    def call(self, inputs: Any) -> Any:
        _, h, w, c = inputs.shape
        x = ops.reshape(inputs, (-1, self.num_frames, h * w, c))  # (B, T, h*w, c)
        if keras.backend.backend() == "tensorflow":
            x = _temporal_conv_tf(x, ops.convert_to_tensor(self.kernel), self.dilation_rate)
        else:
            x = ops.conv(
                x, self.kernel, strides=1, padding="same", dilation_rate=(self.dilation_rate, 1)
            )
        return ops.reshape(x, (-1, h, w, self.filters))  # (B*T, h, w, filters)

    def compute_output_shape(self, input_shape: Sequence[Any]) -> tuple[Any, ...]:
        return (*input_shape[:-1], self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            dilation_rate=self.dilation_rate,
            num_frames=self.num_frames,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrameConv3D(keras.layers.Layer):
    """3x3x3 convolution (time dilation only) on a time-folded tensor, without bias.

    ``(B*T, h, w, c) -> (B*T, h, w, filters)`` via a 5-D ``(B, T, h, w, c)`` view; 'same'
    padding, stride 1 (the lite inverted-bottleneck middle layer).
    """

    def __init__(self, filters: int, dilation_rate: int, num_frames: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.dilation_rate = max(1, int(dilation_rate))
        self.num_frames = num_frames

    def build(self, input_shape: Sequence[Any]) -> None:
        self.kernel = self.add_weight(
            name="kernel",
            shape=(3, 3, 3, input_shape[-1], self.filters),
            initializer="variance_scaling",
        )

    def call(self, inputs: Any) -> Any:
        _, h, w, c = inputs.shape
        x = ops.reshape(inputs, (-1, self.num_frames, h, w, c))  # (B, T, h, w, c)
        x = ops.conv(
            x, self.kernel, strides=1, padding="same", dilation_rate=(self.dilation_rate, 1, 1)
        )
        return ops.reshape(x, (-1, h, w, self.filters))

    def compute_output_shape(self, input_shape: Sequence[Any]) -> tuple[Any, ...]:
        return (*input_shape[:-1], self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters, dilation_rate=self.dilation_rate, num_frames=self.num_frames
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConnectionFusion(keras.layers.Layer):
    """Fuses a block's input streams (AssembleNet section 4, AssembleNet++ attention).

    Inputs: a list of ``num_edges`` streams ``(B*T, h_k, w_k, c_k)`` followed, in 'peer' mode,
    by ``num_peers`` peer vectors ``(B*T, p)``. Steps, per edge k:

    1. max-pool to the smallest spatial size with ratio ``r = (h_k + 1) // h_min`` ('same');
    2. with several edges, multiply by ``sigmoid(w_k)`` (w fixed at ``logit(edge_weights)`` when
       given, else trainable, initialised near 0 so every weight starts at about 0.5);
    3. attention (per frame, channel-wise): 'self' uses ``sigmoid(Dense(mean_hw(x_k)))``; 'peer'
       mixes the peer vectors with ``softmax(beta_k)`` (trainable) and applies
       ``sigmoid(Dense(mix))``;
    4. sum the edges with equal channel counts; project each group whose count differs from the
       widest (ignoring object-class streams) with a 1x1 conv (no bias/BN/ReLU); sum the groups.

    With ``combine='concat'`` steps 2-4 are replaced by concatenation along channels.
    Output: ``(B*T, h_min, w_min, C)``.

    Args:
        combine: 'sigmoid' or 'concat'.
        edge_weights: stored post-sigmoid weights (fixed logits) or empty for learnable logits.
        attention_mode: None, 'self' or 'peer'.
        num_peers: peer vectors appended to the inputs ('peer' mode).
        object_edges: indices of edges that are object-class streams (never set the width).
    """

    def __init__(
        self,
        combine: str = "sigmoid",
        edge_weights: Sequence[float] = (),
        attention_mode: str | None = None,
        num_peers: int = 0,
        object_edges: Sequence[int] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.combine = combine
        self.edge_weights = [float(w) for w in edge_weights]
        self.attention_mode = attention_mode or None
        self.num_peers = int(num_peers)
        self.object_edges = [int(i) for i in object_edges]

    def build(self, input_shape: Sequence[Sequence[Any]]) -> None:
        shapes = [tuple(s) for s in input_shape]
        n = len(shapes) - self.num_peers
        self.num_edges = n
        edge_shapes = shapes[:n]
        self.channels = [s[-1] for s in edge_shapes]
        self.min_h = min(s[1] for s in edge_shapes)
        self.min_w = min(s[2] for s in edge_shapes)
        self.pool = [((s[1] + 1) // self.min_h, (s[2] + 1) // self.min_w) for s in edge_shapes]
        if self.combine == "concat":
            self.out_channels = sum(self.channels)
            return
        if n > 1:
            if self.edge_weights:
                init: Any = keras.initializers.Constant([logit(p) for p in self.edge_weights])
            else:
                init = keras.initializers.TruncatedNormal(stddev=0.01)
            self.edge_logits = self.add_weight(
                name="edge_logits",
                shape=(n,),
                initializer=init,
                trainable=not self.edge_weights,
            )
        self.att_kernels = []
        self.att_biases = []
        self.peer_logits = []
        if self.attention_mode:
            for k, c in enumerate(self.channels):
                in_dim = shapes[n][-1] if self.attention_mode == "peer" else c
                if self.attention_mode == "peer":
                    self.peer_logits.append(
                        self.add_weight(
                            name=f"peer_logits_{k}",
                            shape=(self.num_peers,),
                            initializer=keras.initializers.TruncatedNormal(stddev=0.01),
                        )
                    )
                self.att_kernels.append(
                    self.add_weight(
                        name=f"attention_kernel_{k}",
                        shape=(in_dim, c),
                        initializer=keras.initializers.RandomNormal(stddev=0.01),
                    )
                )
                self.att_biases.append(
                    self.add_weight(name=f"attention_bias_{k}", shape=(c,), initializer="zeros")
                )
        width_from = [c for k, c in enumerate(self.channels) if k not in self.object_edges]
        self.out_channels = max(width_from or self.channels)
        self.groups = sorted(set(self.channels))
        self.projections = {}
        for c in self.groups:
            if c != self.out_channels:
                # 1x1 conv kernel, stored as (1, 1, c, C) like Conv2D; applied as a matmul.
                # String keys: SavedModel export cannot track dicts with int keys.
                self.projections[str(c)] = self.add_weight(
                    name=f"projection_{c}",
                    shape=(1, 1, c, self.out_channels),
                    initializer="variance_scaling",
                )

    def call(self, inputs: Sequence[Any]) -> Any:
        edges = list(inputs[: self.num_edges])
        peers = list(inputs[self.num_edges :])
        for k, (rh, rw) in enumerate(self.pool):
            if rh > 1 or rw > 1:
                edges[k] = ops.max_pool(edges[k], (rh, rw), strides=(rh, rw), padding="same")
        if self.combine == "concat":
            return ops.concatenate(edges, axis=-1)
        if self.num_edges > 1:
            scale = ops.sigmoid(ops.cast(self.edge_logits, edges[0].dtype))
            edges = [x * scale[k] for k, x in enumerate(edges)]
        if self.attention_mode:
            if self.attention_mode == "peer":
                stacked = ops.stack(peers, axis=1)  # (B*T, num_peers, p)
            for k, x in enumerate(edges):
                if self.attention_mode == "peer":
                    alpha = ops.softmax(ops.cast(self.peer_logits[k], x.dtype))
                    a = ops.einsum("bkp,k->bp", stacked, alpha)  # (B*T, p)
                else:
                    a = ops.mean(x, axis=(1, 2))  # (B*T, c)
                att = ops.sigmoid(ops.matmul(a, self.att_kernels[k]) + self.att_biases[k])
                edges[k] = x * att[:, None, None, :]
        total = None
        for c in self.groups:
            group = None
            for k, x in enumerate(edges):
                if self.channels[k] == c:
                    group = x if group is None else group + x
            if str(c) in self.projections:
                group = ops.matmul(group, self.projections[str(c)][0, 0])
            total = group if total is None else total + group
        return total

    def compute_output_shape(self, input_shape: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
        shapes = [tuple(s) for s in input_shape]
        n = len(shapes) - self.num_peers
        edge_shapes = shapes[:n]
        min_h = min(s[1] for s in edge_shapes)
        min_w = min(s[2] for s in edge_shapes)
        channels = [s[-1] for s in edge_shapes]
        if self.combine == "concat":
            out = sum(channels)
        else:
            width_from = [c for k, c in enumerate(channels) if k not in self.object_edges]
            out = max(width_from or channels)
        return (edge_shapes[0][0], min_h, min_w, out)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            combine=self.combine,
            edge_weights=list(self.edge_weights),
            attention_mode=self.attention_mode,
            num_peers=self.num_peers,
            object_edges=list(self.object_edges),
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassifierHead(keras.layers.Layer):
    """Multi-stream classifier head; always float32 logits.

    Inputs: a list of final streams ``(B*T, h, w, C)`` (the level-3 nodes). Each is averaged over
    h, w; the streams are averaged; then either the frames are averaged and a Dense gives
    ``(B, K)`` logits, or (``max_pool_predictions``) per-frame logits ``z`` of shape
    ``(B, T, K)`` are pooled with ``softmax_T(z / sqrt(T))`` weights.

    Args:
        num_classes: K.
        num_frames: T, static.
        max_pool_predictions: softmax-over-time pooling of per-frame logits.
        dropout_rate: dropout on the pooled features before the Dense (lite head).
    """

    def __init__(
        self,
        num_classes: int,
        num_frames: int,
        max_pool_predictions: bool = False,
        dropout_rate: float = 0.0,
        **kwargs: Any,
    ) -> None:
        kwargs["dtype"] = "float32"  # logits stay float32 under mixed_bfloat16
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.max_pool_predictions = max_pool_predictions
        self.dropout_rate = dropout_rate
        self.dropout = keras.layers.Dropout(dropout_rate) if dropout_rate else None

    def build(self, input_shape: Sequence[Sequence[Any]]) -> None:
        channels = input_shape[0][-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(channels, self.num_classes),
            initializer=keras.initializers.RandomNormal(stddev=0.01),
        )
        self.bias = self.add_weight(name="bias", shape=(self.num_classes,), initializer="zeros")

    def call(self, inputs: Sequence[Any], training: bool | None = None) -> Any:
        feats = [ops.mean(ops.cast(x, "float32"), axis=(1, 2)) for x in inputs]  # (B*T, C)
        f = feats[0] if len(feats) == 1 else ops.mean(ops.stack(feats, axis=0), axis=0)
        f = ops.reshape(f, (-1, self.num_frames, f.shape[-1]))  # (B, T, C)
        if not self.max_pool_predictions:
            f = ops.mean(f, axis=1)  # (B, C)
        if self.dropout is not None:
            f = self.dropout(f, training=training)
        z = ops.matmul(f, self.kernel) + self.bias  # (B, K) or (B, T, K)
        if self.max_pool_predictions:
            a = ops.softmax(z / math.sqrt(self.num_frames), axis=1)
            z = ops.sum(a * z, axis=1)
        return z

    def compute_output_shape(self, input_shape: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
        bt = input_shape[0][0]
        b = bt // self.num_frames if bt is not None else None
        return (b, self.num_classes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("dtype", None)
        config.update(
            num_classes=self.num_classes,
            num_frames=self.num_frames,
            max_pool_predictions=self.max_pool_predictions,
            dropout_rate=self.dropout_rate,
        )
        return config
