"""Experiment configuration: frozen typed dataclasses, with YAML as their only serialization.

An experiment file has four sections, ``model``, ``data``, ``train`` and ``eval``, each mapped
onto one dataclass below. Every default lives in the declaration. :func:`load_config` is strict:
an unknown key, a value of the wrong type or an impossible value raises
:class:`~model.errors.ConfigError` naming the dotted key and the file, before any compute starts.
Dotted overrides (``{"train.steps": 10}``; strings are parsed as YAML scalars, so the command
line's ``--set train.steps=10`` works too) are applied before validation.

Example::

    cfg = load_config("model/configs/synthetic.yaml", {"train.steps": 20})
    cfg.train.batch_size  # 16
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from model.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"

Distribution = Literal["auto", "tpu", "mirrored", "cpu", "gpu"]
Precision = Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"]
Schedule = Literal["cosine", "exponential", "constant"]
AttentionMode = Literal["preset", "none", "self", "peer"]
Combine = Literal["preset", "sigmoid", "concat"]


@dataclasses.dataclass(frozen=True, slots=True)
class ModelConfig:
    """Which network to build and how to change its preset.

    Attributes:
        preset: name in ``model.presets.PRESETS`` (``tiny``, ``assemblenet50``, ...).
        structure_file: optional JSON structure (published list format) used instead of the
            preset's structure (e.g. a ``learned_structure.json`` from a search run).
        attention_mode: AssembleNet++ peer/self attention; ``preset`` keeps the preset's value.
        combine: connection fusion; ``preset`` keeps the preset's value.
        bn_momentum: batch-norm moving-average momentum; ``None`` keeps the preset's (0.99).
            Few steps per epoch want a lower value (0.9) so eval statistics catch up.
        max_pool_predictions: softmax-over-time head pooling (section 6); ``None`` keeps the
            preset's value.
        learnable_edges: connection-search mode: edge weights are trainable and the learned
            structure is written to ``learned_structure.json`` after training.
        prune_below: when writing the learned structure, drop edges whose normalised weight is
            below this value (``None`` keeps every edge).
        sync_batch_norm: synchronized batch norm across replicas; ``None`` means "on TPU only".
    """

    preset: str = "tiny"
    structure_file: str | None = None
    attention_mode: AttentionMode = "preset"
    combine: Combine = "preset"
    bn_momentum: float | None = None
    max_pool_predictions: bool | None = None
    learnable_edges: bool = False
    prune_below: float | None = None
    sync_batch_norm: bool | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DataConfig:
    """Clip shape and label space; ``num_classes`` must match the data's ``label_map.txt``.

    Attributes:
        num_classes: K, the number of classes.
        num_frames: T, frames per clip (the model input is [B, T, S, S, 3]).
        image_size: S, the square crop side in pixels.
        temporal_stride: frame step when sampling a clip.
        dtype: dtype of the clips the input pipeline yields; ``auto`` is ``bfloat16`` on TPU
            (half the host-to-device bandwidth, as the reference) and ``float32`` elsewhere.
        shuffle_buffer: tf.data shuffle buffer of training examples.
        random_flip: random horizontal flip in training; turn it off when labels are
            directions (left/right, clockwise/anticlockwise), which a flip swaps.
        tfds_name: read a prepared TFDS video dataset (e.g. ``ucf101/ucf101_1_256``) from the
            data directory instead of TFRecord shards, as Model Garden's ``tfds_name``; the
            class names and split sizes then come from the dataset's metadata.
        spatial_augmentation: where training's flip, resize and scaling run. ``host`` does
            them in the input pipeline. ``device`` does them on the accelerator inside the
            train step, so host CPUs only decode (about 1.5x the clips per host core measured
            on 320x240 frames) and send bytes, not floats; where the "accelerator" is the CPU
            itself that is slower. ``auto`` is ``device`` when training on TPUs or GPUs and
            ``host`` otherwise. Evaluation always prepares clips on the host.
        frame_canvas_height: unless ``host``, the height of the canvas each decoded crop is
            padded into for the transfer: the stored frame height (240 for UCF101). Crops from
            larger frames are shrunk on the host to fit.
        frame_canvas_width: unless ``host``, the canvas width (320 for UCF101).
    """

    num_classes: int = 4
    num_frames: int = 8
    image_size: int = 32
    temporal_stride: int = 1
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    shuffle_buffer: int = 64
    random_flip: bool = True
    tfds_name: str = ""
    spatial_augmentation: Literal["auto", "host", "device"] = "host"
    frame_canvas_height: int = 0
    frame_canvas_width: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class TrainConfig:
    """Optimisation: SGD with momentum (Nesterov), warmup, schedule, checkpoints, devices.

    Attributes:
        batch_size: global batch size (split across replicas).
        steps: total optimizer steps; a resumed job stops here too.
        learning_rate: peak learning rate reached after warmup.
        schedule: ``cosine`` (to ``alpha`` x peak at ``steps``), ``exponential``
            (peak x ``decay_rate`` ** floor(step / ``decay_steps``), staircase) or ``constant``.
        warmup_steps: linear warmup from 0 to the schedule's value.
        decay_steps: exponential schedule's staircase step.
        decay_rate: exponential schedule's factor per stair.
        alpha: cosine schedule's final fraction of the peak.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        label_smoothing: categorical cross-entropy label smoothing.
        steps_per_execution: train steps run inside one compiled call (TPU host-loop length).
        checkpoint_every: steps between checkpoints; a multiple of ``steps_per_execution``.
        keep_checkpoints: number of checkpoints kept.
        log_every: steps between progress lines and TensorBoard points; a multiple of
            ``steps_per_execution``.
        seed: seeds weights initialisation and the data order.
        distribution: ``auto`` picks TPU if one is attached, several GPUs -> mirrored, else one
            device.
        mixed_precision: Keras dtype policy; ``auto`` is ``mixed_bfloat16`` on TPU, else float32.
        deterministic: enable TensorFlow op determinism (bit-exact reruns, slower).
    """

    batch_size: int = 16
    steps: int = 100
    learning_rate: float = 0.1
    schedule: Schedule = "cosine"
    warmup_steps: int = 0
    decay_steps: int = 1000
    decay_rate: float = 0.96
    alpha: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    label_smoothing: float = 0.0
    steps_per_execution: int = 1
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    log_every: int = 10
    seed: int = 0
    distribution: Distribution = "auto"
    mixed_precision: Precision = "auto"
    deterministic: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class EvalConfig:
    """Multi-view evaluation: ``num_test_clips`` x ``num_test_crops`` views per video.

    Attributes:
        num_test_clips: clips spread evenly over each video.
        num_test_crops: 1 (centre) or 3 (along the longer side).
        batch_size: videos per batch (each expands to clips x crops rows).
    """

    num_test_clips: int = 1
    num_test_crops: Literal[1, 3] = 1
    batch_size: int = 8


@dataclasses.dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """One experiment: what to build, on what data, how to train it and how to evaluate it."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)

    def model_overrides(self) -> dict[str, object]:
        """Keyword overrides for ``model.assemblenet.build_model`` (only what differs from the
        preset). ``attention_mode='none'`` becomes ``None`` (no attention)."""
        m = self.model
        out: dict[str, object] = {}
        if m.attention_mode != "preset":
            out["attention_mode"] = None if m.attention_mode == "none" else m.attention_mode
        if m.combine != "preset":
            out["combine"] = m.combine
        if m.bn_momentum is not None:
            out["bn_momentum"] = m.bn_momentum
        if m.max_pool_predictions is not None:
            out["max_pool_predictions"] = m.max_pool_predictions
        if m.learnable_edges:
            out["learnable_edges"] = True
        return out


_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}


def _type_name(tp: object) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _check_value(value: object, tp: object) -> tuple[bool, object]:
    """Returns (ok, value converted to ``tp``); ints are accepted for floats, bools never for
    numbers (YAML ``yes`` must not become a batch size of 1)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, converted = _check_value(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin is Literal:
        return value in typing.get_args(tp) and not isinstance(value, bool), value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value  # type: ignore[arg-type]
    if tp is str:
        return isinstance(value, str), value
    raise TypeError(f"unsupported config field type {tp!r}")


def _build_section(cls: type, raw: object, section: str, source: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: '{section}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{section}.{unknown[0]}'; valid keys in '{section}': "
            f"{', '.join(sorted(names))}"
        )
    values = {}
    for key, value in raw.items():
        ok, converted = _check_value(value, hints[key])
        if not ok:
            raise ConfigError(
                f"{source}: '{section}.{key}' must be {_type_name(hints[key])}, got {value!r}"
            )
        values[key] = converted
    return cls(**values)


def _positive(cfg: ExperimentConfig) -> list[tuple[str, object]]:
    return [
        ("data.num_classes", cfg.data.num_classes),
        ("data.num_frames", cfg.data.num_frames),
        ("data.image_size", cfg.data.image_size),
        ("data.temporal_stride", cfg.data.temporal_stride),
        ("data.shuffle_buffer", cfg.data.shuffle_buffer),
        ("train.batch_size", cfg.train.batch_size),
        ("train.steps", cfg.train.steps),
        ("train.learning_rate", cfg.train.learning_rate),
        ("train.decay_steps", cfg.train.decay_steps),
        ("train.decay_rate", cfg.train.decay_rate),
        ("train.steps_per_execution", cfg.train.steps_per_execution),
        ("train.checkpoint_every", cfg.train.checkpoint_every),
        ("train.keep_checkpoints", cfg.train.keep_checkpoints),
        ("train.log_every", cfg.train.log_every),
        ("eval.num_test_clips", cfg.eval.num_test_clips),
        ("eval.batch_size", cfg.eval.batch_size),
    ]


def validate(cfg: ExperimentConfig, source: str = "<config>") -> ExperimentConfig:
    """Checks values that are well-typed but impossible; returns ``cfg`` unchanged.

    Raises:
        ConfigError: naming the key and ``source``.
    """
    for key, value in _positive(cfg):
        if value <= 0:  # type: ignore[operator]
            raise ConfigError(f"{source}: '{key}' must be > 0, got {value!r}")
    t = cfg.train
    ranges = [
        ("train.momentum", t.momentum, 0.0, 1.0),
        ("train.label_smoothing", t.label_smoothing, 0.0, 1.0),
        ("train.alpha", t.alpha, 0.0, 1.0),
    ]
    if cfg.model.bn_momentum is not None:
        ranges.append(("model.bn_momentum", cfg.model.bn_momentum, 0.0, 1.0))
    if cfg.model.prune_below is not None:
        ranges.append(("model.prune_below", cfg.model.prune_below, 0.0, 1.0))
    for key, value, low, high in ranges:
        if not low <= value < high:
            raise ConfigError(f"{source}: '{key}' must be in [{low}, {high}), got {value!r}")
    if t.warmup_steps < 0 or t.warmup_steps >= t.steps:
        raise ConfigError(
            f"{source}: 'train.warmup_steps' must be in [0, train.steps={t.steps}), "
            f"got {t.warmup_steps}"
        )
    if t.seed < 0:
        raise ConfigError(f"{source}: 'train.seed' must be >= 0, got {t.seed}")
    # The host loop runs `steps_per_execution` steps per call, so checkpoints, logs and the
    # final step can only land on multiples of it.
    for key in ("steps", "checkpoint_every", "log_every"):
        value = getattr(t, key)
        if value % t.steps_per_execution:
            raise ConfigError(
                f"{source}: 'train.{key}'={value} must be a multiple of "
                f"'train.steps_per_execution'={t.steps_per_execution}"
            )
    if not cfg.model.preset:
        raise ConfigError(f"{source}: 'model.preset' must not be empty")
    d = cfg.data
    if d.spatial_augmentation != "host" and min(d.frame_canvas_height, d.frame_canvas_width) <= 0:
        raise ConfigError(
            f"{source}: 'data.spatial_augmentation'={d.spatial_augmentation} needs "
            f"'data.frame_canvas_height' and 'data.frame_canvas_width' > 0 (the stored frame "
            f"size, e.g. 240 and 320 for UCF101), got {d.frame_canvas_height} and "
            f"{d.frame_canvas_width}"
        )
    return cfg


def validate_for_replicas(cfg: ExperimentConfig, num_replicas: int, *, on_tpu: bool) -> None:
    """Checks the config against the devices it will run on, before building anything.

    Args:
        cfg: the experiment.
        num_replicas: replicas in sync of the chosen distribution strategy.
        on_tpu: whether the strategy is a TPUStrategy.

    Raises:
        ConfigError: the global batch is not divisible by the replicas, a float16 policy on
            TPU (TPUs compute in bfloat16), or a bfloat16 input dtype off TPU with float32
            compute (a silent precision loss).
    """
    if cfg.train.batch_size % num_replicas:
        raise ConfigError(
            f"'train.batch_size'={cfg.train.batch_size} (the global batch) must be divisible by "
            f"the {num_replicas} replicas in sync"
        )
    if on_tpu and cfg.train.mixed_precision == "mixed_float16":
        raise ConfigError(
            "'train.mixed_precision'='mixed_float16' is not supported on TPU; use "
            "'mixed_bfloat16' or 'auto'"
        )
    if not on_tpu and cfg.data.dtype == "bfloat16" and resolve_precision(cfg, False) == "float32":
        raise ConfigError(
            "'data.dtype'='bfloat16' with float32 compute off TPU loses precision for nothing; "
            "set data.dtype=float32 or train.mixed_precision=mixed_bfloat16"
        )


def resolve_precision(cfg: ExperimentConfig, on_tpu: bool) -> str:
    """The Keras dtype policy name: ``auto`` is ``mixed_bfloat16`` on TPU, else ``float32``."""
    if cfg.train.mixed_precision == "auto":
        return "mixed_bfloat16" if on_tpu else "float32"
    return cfg.train.mixed_precision


def resolve_data_dtype(cfg: ExperimentConfig, on_tpu: bool) -> str:
    """The input pipeline's clip dtype: ``auto`` is ``bfloat16`` on TPU, else ``float32``."""
    if cfg.data.dtype == "auto":
        return "bfloat16" if on_tpu else "float32"
    return cfg.data.dtype


def resolve_device_canvas(cfg: ExperimentConfig, accelerated: bool) -> tuple[int, int] | None:
    """The training canvas ``(height, width)`` when the accelerator does the spatial
    augmentation, ``None`` when the host does (``auto``: the device when ``accelerated``)."""
    where = cfg.data.spatial_augmentation
    if where == "host" or (where == "auto" and not accelerated):
        return None
    return cfg.data.frame_canvas_height, cfg.data.frame_canvas_width


def _parse_override(value: object) -> object:
    # Command-line values arrive as strings: read them as YAML scalars ("10" -> 10,
    # "true" -> True, "null" -> None) so they meet the same type checks as the file.
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def apply_overrides(
    raw: dict[str, Any], overrides: Mapping[str, object], source: str
) -> dict[str, Any]:
    """Returns a copy of the raw YAML mapping with ``section.key`` overrides set."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if len(parts) != 2 or parts[0] not in _SECTIONS:
            raise ConfigError(
                f"{source}: override '{dotted}' must be 'section.key' with section one of "
                f"{', '.join(_SECTIONS)}"
            )
        section, key = parts
        if not isinstance(out.get(section) or {}, Mapping):
            raise ConfigError(f"{source}: '{section}' must be a mapping")
        out.setdefault(section, {})
        if out[section] is None:
            out[section] = {}
        hints = typing.get_type_hints(_SECTIONS[section])
        parsed = value
        if key in hints and hints[key] is not str:
            parsed = _parse_override(value)
        out[section][key] = parsed
    return out


def from_dict(
    raw: object, overrides: Mapping[str, object] | None = None, source: str = "<dict>"
) -> ExperimentConfig:
    """Builds and validates an :class:`ExperimentConfig` from a plain mapping."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {raw!r}")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown section '{unknown[0]}'; valid sections: {', '.join(_SECTIONS)}"
        )
    raw = apply_overrides(dict(raw), overrides or {}, source)
    sections = {
        name: _build_section(cls, raw.get(name), name, source) for name, cls in _SECTIONS.items()
    }
    return validate(ExperimentConfig(**sections), source)


def load_config(
    path: str | Path, overrides: Mapping[str, object] | None = None
) -> ExperimentConfig:
    """Reads an experiment YAML file strictly (see module docstring).

    ``path`` may be a local path, a ``gs://`` URI (read with ``tf.io.gfile``) or the bare name
    of a shipped config (``synthetic`` -> ``model/configs/synthetic.yaml``).

    Raises:
        ConfigError: missing file, bad YAML, unknown key, wrong type or impossible value.
    """
    text, source = _read_text(str(path))
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None
    return from_dict(raw, overrides, source)


def _read_text(path: str) -> tuple[str, str]:
    if "://" in path:
        import tensorflow as tf  # only remote configs need TensorFlow's filesystems

        if not tf.io.gfile.exists(path):
            raise ConfigError(f"config file not found: {path}")
        with tf.io.gfile.GFile(path) as handle:
            return handle.read(), path
    candidate = Path(path)
    if not candidate.exists() and "/" not in path:
        shipped = CONFIG_DIR / (path if path.endswith(".yaml") else f"{path}.yaml")
        if shipped.exists():
            candidate = shipped
    if not candidate.is_file():
        shipped_names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(f"config file not found: {path} (shipped configs: {shipped_names})")
    return candidate.read_text(), str(candidate)


def to_dict(cfg: ExperimentConfig) -> dict[str, dict[str, object]]:
    """The config as plain YAML-safe data (inverse of :func:`from_dict`)."""
    return {name: dataclasses.asdict(getattr(cfg, name)) for name in _SECTIONS}


def dump_config(cfg: ExperimentConfig) -> str:
    """YAML text that :func:`load_config` reads back into an equal config."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
