"""AssembleNet and AssembleNet++ video classifiers in Keras 3.

References:
    M. S. Ryoo, A. Piergiovanni, M. Tan, A. Angelova. "AssembleNet: Searching for Multi-Stream
    Neural Connectivity in Video Architectures." ICLR 2020, arXiv:1905.13209.
    M. S. Ryoo, A. Piergiovanni, J. Kangaspunta, A. Angelova. "AssembleNet++: Assembling Modality
    Representations via Attention Connections." ECCV 2020, arXiv:2008.08072.

The network is a DAG of stems (RGB, Representation-Flow optical flow, object segmentation) and
(2+1)D residual block groups at four levels whose inputs are fused with learned connection
weights. This module builds it as a functional ``keras.Model`` from an
:class:`~model.structures.AssembleNetSpec`: helpers -> stems -> blocks -> ``build_assemblenet``
-> ``build_model``. AssembleNet-50/101 match the TensorFlow Model Garden reference parameter for
parameter; AssembleNet++ follows the papers (trainable peer selection, honoured edge weights,
every input projected and summed). Internally tensors are time-folded ``(B*T, h, w, c)``.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from model.errors import ConfigError, StructureError
from model.layers import (
    BatchNorm,
    ClassifierHead,
    ConnectionFusion,
    FoldTime,
    FrameConv3D,
    RepresentationFlow,
    TemporalConv,
)
from model.presets import get_preset
from model.structures import (
    AssembleNetSpec,
    BlockSpec,
    StemSpec,
    spec_from_dict,
    spec_to_dict,
    validate,
)

__all__ = ["AssembleNet", "build_assemblenet", "build_model", "count_params"]


class _Builder:
    """Holds the per-model settings while the functional graph is assembled."""

    def __init__(self, spec: AssembleNetSpec, num_frames: int) -> None:
        self.spec = spec
        self.t = num_frames

    # --- helpers ---------------------------------------------------------------------------
    def bn(self, x: Any, name: str, zero_gamma: bool = False) -> Any:
        return BatchNorm(
            momentum=self.spec.bn_momentum,
            epsilon=self.spec.bn_epsilon,
            gamma_initializer="zeros" if zero_gamma else "ones",
            name=name,
        )(x)

    @staticmethod
    def relu(x: Any, name: str) -> Any:
        return keras.layers.ReLU(name=name)(x)

    def conv(self, x: Any, filters: int, kernel: int, stride: int, name: str) -> Any:
        """Bias-free 2-D conv; strided convs use the reference's fixed (symmetric) padding."""
        if stride > 1 and kernel > 1:
            pad = (kernel - 1) // 2
            x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
            padding = "valid"
        else:
            padding = "same"
        return keras.layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding=padding,
            use_bias=False,
            kernel_initializer="variance_scaling",
            name=name,
        )(x)

    def temporal_conv(self, x: Any, filters: int, kernel: int, dilation: int, name: str) -> Any:
        dilation = max(1, dilation)
        if dilation > 1:
            # The reference widens no receptive field for free: dilated kernels get He init.
            init: Any = keras.initializers.TruncatedNormal(
                stddev=math.sqrt(2.0 / (kernel * x.shape[-1]))
            )
        else:
            init = "variance_scaling"
        return TemporalConv(filters, kernel, dilation, self.t, kernel_initializer=init, name=name)(
            x
        )

    # --- stems -----------------------------------------------------------------------------
    def rgb_stem(self, x: Any, stem: StemSpec, name: str) -> Any:
        f = self.spec.resolved_stem_filters()
        if self.spec.lite:
            return self.lite_stem(x, stem, name)
        x = self.conv(x, f, 7, 2, f"{name}_conv")  # (B*T, H/2, W/2, F)
        x = self.relu(self.bn(x, f"{name}_bn"), f"{name}_relu")
        x = self.temporal_conv(x, f, 5, stem.temporal_dilation, f"{name}_tconv")
        x = self.relu(self.bn(x, f"{name}_tbn"), f"{name}_trelu")
        return keras.layers.MaxPooling2D(3, 2, padding="same", name=f"{name}_pool")(x)

    def flow_stem(self, flow: Any, stem: StemSpec, name: str) -> Any:
        if self.spec.lite:
            return self.lite_stem(flow, stem, name)
        f = self.spec.resolved_stem_filters()
        x = self.conv(flow, f, 7, 2, f"{name}_conv")
        x = self.relu(self.bn(x, f"{name}_bn"), f"{name}_relu")
        return keras.layers.MaxPooling2D(2, 2, padding="same", name=f"{name}_pool")(x)

    def lite_stem(self, x: Any, stem: StemSpec, name: str) -> Any:
        f = self.spec.resolved_stem_filters()
        x = keras.layers.Conv2D(
            f, 3, strides=2, padding="same", use_bias=False, name=f"{name}_conv"
        )(x)
        x = self.relu(self.bn(x, f"{name}_bn"), f"{name}_relu")
        x = self.temporal_conv(x, f, 3, stem.temporal_dilation, f"{name}_tconv")
        return self.relu(self.bn(x, f"{name}_tbn"), f"{name}_trelu")

    # --- blocks ----------------------------------------------------------------------------
    def bottleneck_unit(self, x: Any, unit: int, block: BlockSpec, inter: int, name: str) -> Any:
        """(2+1)D bottleneck residual unit; temporal conv in odd units."""
        f = block.filters
        assert isinstance(f, int)
        stride = block.spatial_stride if unit == 0 else 1
        if unit == 0:
            shortcut = self.conv(x, 4 * f, 1, stride, f"{name}_proj")
            shortcut = self.bn(shortcut, f"{name}_proj_bn")
        else:
            shortcut = x
        if unit % 2 == 1:
            y = self.temporal_conv(x, f, 3, block.temporal_dilation, f"{name}_a")
        else:
            y = self.conv(x, f, 1, 1, f"{name}_a")
        y = self.relu(self.bn(y, f"{name}_a_bn"), f"{name}_a_relu")
        y = self.conv(y, inter, 3, stride, f"{name}_b")
        y = self.relu(self.bn(y, f"{name}_b_bn"), f"{name}_b_relu")
        y = self.conv(y, 4 * f, 1, 1, f"{name}_c")
        y = self.bn(y, f"{name}_c_bn", zero_gamma=True)
        y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
        return self.relu(y, f"{name}_out")

    def lite_unit(self, x: Any, unit: int, block: BlockSpec, name: str) -> Any:
        """Inverted-bottleneck unit of AssembleNet++ lite (3-D convs on the folded layout)."""
        assert isinstance(block.filters, tuple)
        e, m, o = block.filters
        s = block.spatial_stride if unit == 0 else 1
        if unit == 0:
            shortcut = keras.layers.Conv2D(o, 1, strides=s, use_bias=False, name=f"{name}_proj")(x)
            shortcut = self.bn(shortcut, f"{name}_proj_bn")
        else:
            shortcut = x
        y = keras.layers.Conv2D(e, 1, use_bias=False, name=f"{name}_expand")(x)
        y = self.relu(self.bn(y, f"{name}_expand_bn"), f"{name}_expand_relu")
        if unit == 0 and s > 1:
            y = keras.layers.Conv2D(
                m, 3, strides=s, padding="same", use_bias=False, name=f"{name}_spatial"
            )(y)
            y = self.relu(self.bn(y, f"{name}_spatial_bn"), f"{name}_spatial_relu")
            y = self.temporal_conv(y, m, 3, block.temporal_dilation, f"{name}_temporal")
            y = self.relu(self.bn(y, f"{name}_temporal_bn"), f"{name}_temporal_relu")
        else:
            y = FrameConv3D(m, block.temporal_dilation, self.t, name=f"{name}_conv3d")(y)
            y = self.relu(self.bn(y, f"{name}_conv3d_bn"), f"{name}_conv3d_relu")
        y = keras.layers.Conv2D(o, 1, use_bias=False, name=f"{name}_project")(y)
        y = self.bn(y, f"{name}_project_bn", zero_gamma=True)
        y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
        return self.relu(y, f"{name}_out")

    def block_group(self, x: Any, block: BlockSpec, name: str) -> Any:
        units = self.spec.resolved_units()[block.level]
        inter = self.spec.resolved_mid_filters()[block.level]
        for u in range(units):
            if self.spec.lite:
                x = self.lite_unit(x, u, block, f"{name}_u{u}")
            else:
                x = self.bottleneck_unit(x, u, block, inter, f"{name}_u{u}")
        return x

    # --- fusion ----------------------------------------------------------------------------
    def fuse(self, index: int, block: BlockSpec, streams: list[Any], peers: list[Any]) -> Any:
        spec = self.spec
        edges = [streams[j] for j in block.inputs]
        if len(edges) == 1 and not spec.attention_mode:
            return edges[0]  # a single input is used as is: no weight, no parameters
        min_h = min(e.shape[1] for e in edges)
        min_w = min(e.shape[2] for e in edges)
        for j, e in zip(block.inputs, edges, strict=True):
            rh, rw = (e.shape[1] + 1) // min_h, (e.shape[2] + 1) // min_w
            if -(-e.shape[1] // rh) != min_h or -(-e.shape[2] // rw) != min_w:
                raise ConfigError(
                    f"node {index}: input node {j} is {e.shape[1]}x{e.shape[2]} and cannot be "
                    f"max-pooled to {min_h}x{min_w}; use an image size that is a multiple of 32"
                )
        object_edges = [
            k
            for k, j in enumerate(block.inputs)
            if isinstance(spec.nodes[j], StemSpec) and spec.nodes[j].kind == "object"
        ]
        fusion = ConnectionFusion(
            combine=spec.combine,
            edge_weights=block.edge_weights if len(edges) > 1 else (),
            attention_mode=spec.attention_mode,
            num_peers=len(peers) if spec.attention_mode == "peer" else 0,
            object_edges=object_edges,
            name=f"node{index}_fusion",
        )
        return fusion(edges + (peers if spec.attention_mode == "peer" else []))

    def peer_vectors(self, index: int, block: BlockSpec, streams: list[Any], pooled: dict) -> list:
        """Per-block peer features ``Dense(p)(mean_hw(stream_k))`` for nodes of lower level."""
        spec = self.spec
        candidates = sorted(
            (k for k in range(index) if spec.node_level(k) < block.level),
            key=lambda k: (spec.node_level(k), k),
        )
        width = max(spec.output_channels(k) for k in candidates)
        vectors = []
        for k in candidates:
            if k not in pooled:
                pooled[k] = keras.layers.GlobalAveragePooling2D(name=f"node{k}_mean")(streams[k])
            vectors.append(
                keras.layers.Dense(
                    width,
                    kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                    name=f"node{index}_peer{k}",
                )(pooled[k])  # (B*T, width)
            )
        return vectors

    # --- whole model -------------------------------------------------------------------------
    def build(self, num_classes: int, image_size: int) -> tuple[Any, Any]:
        """Returns ``(inputs, logits)`` of the functional graph."""
        spec = self.spec
        t = self.t
        image = keras.Input((t, image_size, image_size, 3), name="image")
        inputs: dict[str, Any] = {"image": image}
        frames = FoldTime(name="fold_image")(image)  # (B*T, H, W, 3)
        kinds = {n.kind for _, n in spec.stems}
        flow = None
        if "flow" in kinds:
            flow = RepresentationFlow(t, num_iter=spec.flow_iterations, name="representation_flow")(
                frames
            )  # (B*T, H, W, 2)
        objects = None
        if "object" in kinds:
            obj = keras.Input((t, image_size, image_size, spec.num_object_classes), name="object")
            inputs["object"] = obj
            objects = FoldTime(name="fold_object")(obj)  # (B*T, H, W, classes)

        streams: list[Any] = []
        pooled: dict[int, Any] = {}
        for i, node in enumerate(spec.nodes):
            name = f"node{i}"
            if isinstance(node, StemSpec):
                if node.kind == "rgb":
                    streams.append(self.rgb_stem(frames, node, f"{name}_rgb"))
                elif node.kind == "flow":
                    streams.append(self.flow_stem(flow, node, f"{name}_flow"))
                else:
                    streams.append(
                        keras.layers.MaxPooling2D(4, 4, padding="same", name=f"{name}_object")(
                            objects
                        )
                    )
                continue
            peers = (
                self.peer_vectors(i, node, streams, pooled) if spec.attention_mode == "peer" else []
            )
            x = self.fuse(i, node, streams, peers)  # (B*T, h, w, C_in)
            streams.append(self.block_group(x, node, name))  # (B*T, h/s, w/s, C_out)

        finals = [streams[i] for i in spec.final_nodes]
        if spec.lite:
            # Lite head: two 1x1 convs on the first final node (AssembleNet++ lite).
            x = finals[0]
            for k, width in enumerate(spec.lite_head_filters):
                x = keras.layers.Conv2D(width, 1, use_bias=False, name=f"head_conv{k}")(x)
                x = self.relu(self.bn(x, f"head_bn{k}"), f"head_relu{k}")
            finals = [x]
        logits = ClassifierHead(
            num_classes,
            t,
            max_pool_predictions=spec.max_pool_predictions,
            dropout_rate=spec.dropout_rate,
            name="classifier",
        )(finals)  # (B, K) float32
        return (inputs if len(inputs) > 1 else image), logits


@keras.saving.register_keras_serializable(package="assemblenet")
class AssembleNet(keras.Model):
    """Functional AssembleNet / AssembleNet++ model that remembers its spec.

    The config holds the spec (published lists + settings), so ``keras.models.load_model``
    rebuilds the same graph and ``model.assemblenet_spec`` is available after loading (used by
    the connection search to read learned edge weights back into a structure).

    Args:
        spec: the network (an :class:`AssembleNetSpec` or its :func:`spec_to_dict` form).
        num_classes: K.
        num_frames: T, static.
        image_size: S.
    """

    def __init__(
        self,
        spec: AssembleNetSpec | dict[str, Any],
        num_classes: int,
        num_frames: int,
        image_size: int,
        **kwargs: Any,
    ) -> None:
        if not isinstance(spec, AssembleNetSpec):
            spec = spec_from_dict(spec)
        inputs, logits = _Builder(spec, num_frames).build(num_classes, image_size)
        kwargs.setdefault(
            "name", "assemblenet_plus" if spec.attention_mode or spec.lite else "assemblenet"
        )
        super().__init__(inputs, logits, **kwargs)
        self.assemblenet_spec = spec
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.image_size = image_size

    def get_config(self) -> dict[str, Any]:
        return {
            "spec": spec_to_dict(self.assemblenet_spec),
            "num_classes": self.num_classes,
            "num_frames": self.num_frames,
            "image_size": self.image_size,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> AssembleNet:
        return cls(**config)


def build_assemblenet(
    spec: AssembleNetSpec, *, num_classes: int, num_frames: int, image_size: int
) -> AssembleNet:
    """Builds the functional model for ``spec`` (symbolic build only: no forward pass).

    Args:
        spec: a structure and its settings.
        num_classes: K.
        num_frames: T, static (every temporal conv folds time by it).
        image_size: S; input ``(B, T, S, S, 3)`` floats in [0, 1].

    Returns:
        A ``keras.Model`` mapping ``image`` (and ``object`` for specs with an object stem,
        ``(B, T, S, S, num_object_classes)``) to float32 logits ``(B, K)``.

    Raises:
        StructureError, ConfigError: invalid spec or sizes.
    """
    validate(spec)
    for name, value, low in (
        ("num_classes", num_classes, 1),
        ("num_frames", num_frames, 1),
        ("image_size", image_size, 8),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
    if num_frames < 2 and any(n.kind == "flow" for _, n in spec.stems):
        raise ConfigError("flow stems need num_frames >= 2 (flow is computed between frames)")
    return AssembleNet(spec, num_classes, num_frames, image_size)


def build_model(
    preset: str | AssembleNetSpec,
    *,
    num_classes: int,
    num_frames: int,
    image_size: int,
    **overrides: Any,
) -> keras.Model:
    """Builds a preset (or a spec) with optional spec-field overrides.

    Args:
        preset: a name from :data:`model.presets.PRESETS` or an :class:`AssembleNetSpec`.
        num_classes: K.
        num_frames: T.
        image_size: S.
        **overrides: spec fields to replace (``attention_mode``, ``combine``,
            ``max_pool_predictions``, ``bn_momentum``, ...) and ``learnable_edges=True`` to make
            every edge logit trainable (the one-shot connection search).

    Raises:
        ConfigError: unknown preset or override; StructureError for invalid structures.
    """
    spec = get_preset(preset) if isinstance(preset, str) else preset
    if overrides.pop("learnable_edges", False):
        spec = spec.with_learnable_edges()
    if overrides:
        try:
            spec = spec.replace(**overrides)
        except StructureError as error:
            raise ConfigError(str(error)) from error
    return build_assemblenet(
        spec, num_classes=num_classes, num_frames=num_frames, image_size=image_size
    )


def count_params(model: keras.Model) -> dict[str, int]:
    """Total, trainable and non-trainable parameter counts of a built model."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    return {
        "total": int(trainable + non_trainable),
        "trainable": int(trainable),
        "non_trainable": int(non_trainable),
    }
