"""Training step: experiment config + preprocessed TFRecords -> a self-contained model directory.

``train(config, data_dir=..., model_dir=...)`` runs on whatever the host offers (a Cloud TPU VM,
several GPUs, one CPU), resumes from ``model_dir/checkpoints`` after a preemption, and leaves
``model_dir`` holding everything needed to serve or evaluate the model::

    model.keras            Keras model (float [B, T, S, S, 3] in [0, 1] -> logits [B, K])
    saved_model/           serving_default (uint8 frames) and serving_jpeg (JPEG strings)
    experiment.yaml        the resolved config
    label_map.txt          class names in index order
    checkpoints/           tf.train.CheckpointManager (model, optimizer, input position)
    logs/                  TensorBoard scalars
    training_curves.png    loss, accuracy, learning rate and clips/s by step (from logs/)
    train_summary.json     steps, wall time, throughput, final loss/accuracy, devices
    learned_structure.json connection-search runs only (``model.learnable_edges: true``)

Every output is written under a temporary name and renamed (or copied, on ``gs://``) when
complete, so a preempted job never leaves a half-written file behind.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from model.config import (
    ExperimentConfig,
    dump_config,
    load_config,
    resolve_data_dtype,
    resolve_device_canvas,
    validate,
)
from model.errors import DataError

log = logging.getLogger(__name__)

SUMMARY_FILE = "train_summary.json"
EXPERIMENT_FILE = "experiment.yaml"
MODEL_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
LEARNED_STRUCTURE_FILE = "learned_structure.json"
CURVES_FILE = "training_curves.png"
# TensorBoard tags the training loop writes, and how the curves plot labels them.
CURVE_TAGS = {
    "loss": "loss",
    "accuracy": "training accuracy",
    "learning_rate": "learning rate",
    "examples_per_second": "clips per second",
}


# ------------------------------------------------------------------------------------------
# Files (local or gs://)
# ------------------------------------------------------------------------------------------


def _is_remote(path: str) -> bool:
    return "://" in path


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def publish(local: Path, dest: str) -> None:
    """Moves a finished local file or directory to ``dest`` (local path or ``gs://`` URI)
    without ever exposing a partial copy under the final name."""
    import tensorflow as tf

    if not _is_remote(dest):
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.partial")
        if staging.exists():
            shutil.rmtree(staging) if staging.is_dir() else staging.unlink()
        shutil.move(str(local), staging)
        if target.is_dir():
            shutil.rmtree(target)
        staging.replace(target)
        return
    # Object stores have no rename of directories: copy files, directory last-written wins.
    if local.is_dir():
        for file in sorted(p for p in local.rglob("*") if p.is_file()):
            remote = _join(dest, *file.relative_to(local).parts)
            tf.io.gfile.makedirs(remote.rsplit("/", 1)[0])
            tf.io.gfile.copy(str(file), remote, overwrite=True)
    else:
        tf.io.gfile.copy(str(local), dest, overwrite=True)


def write_text(dest: str, text: str) -> None:
    """Writes ``text`` to ``dest`` atomically (temp file + rename / gfile copy)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file"
        path.write_text(text, encoding="utf-8")
        publish(path, dest)


# ------------------------------------------------------------------------------------------
# Data checks
# ------------------------------------------------------------------------------------------


def _check_class_count(class_names: list[str], cfg: ExperimentConfig, source: str) -> None:
    if len(class_names) != cfg.data.num_classes:
        raise DataError(
            f"label-count mismatch: {source} lists {len(class_names)} classes but the config "
            f"has data.num_classes={cfg.data.num_classes}"
        )


def check_data(data_dir: str, cfg: ExperimentConfig, split: str = "train") -> dict[str, Any]:
    """Fails early, with the cause, on a wrong path, an empty split or a label mismatch.

    With ``data.tfds_name`` set, ``data_dir`` is a TFDS data directory and the class names and
    split size come from the dataset's metadata.

    Returns:
        ``{"class_names": [...], "files": [...], "clips": int | None}`` for ``split``.

    Raises:
        DataError: missing directory, no shards for ``split``, zero clips in stats.json, or
            a label map whose size differs from ``data.num_classes``.
    """
    import tensorflow as tf

    from model.data import schema

    if not tf.io.gfile.isdir(data_dir):
        raise DataError(f"data directory not found: {data_dir}")
    if cfg.data.tfds_name:
        from model.data.input import tfds_metadata

        class_names, clips = tfds_metadata(cfg.data.tfds_name, data_dir, split)
        _check_class_count(class_names, cfg, f"TFDS {cfg.data.tfds_name}")
        if clips == 0:
            raise DataError(f"split '{split}' of TFDS {cfg.data.tfds_name} is empty")
        return {"class_names": class_names, "files": [], "clips": clips}
    class_names = schema.read_label_map(data_dir)
    _check_class_count(class_names, cfg, _join(data_dir, schema.LABEL_MAP_FILE))
    files = sorted(tf.io.gfile.glob(schema.split_pattern(data_dir, split)))
    if not files:
        raise DataError(
            f"no '{split}' shards in {data_dir} (expected {split}-*-of-*.tfrecord); "
            "run `assemblenet data preprocess` first"
        )
    clips = None
    try:
        stats = schema.read_stats(data_dir)
    except DataError:
        stats = None  # stats.json is a convenience; the shards are the truth
    if stats is not None:
        split_stats = stats.get("splits", {}).get(split)
        clips = int(split_stats.get("clips", 0)) if split_stats else 0
        if clips == 0:
            raise DataError(f"split '{split}' in {data_dir} is empty (stats.json counts 0 clips)")
        per_class = split_stats.get("per_class") or {}
        unknown = sorted(set(per_class) - set(class_names))
        if unknown:
            raise DataError(
                f"stats.json in {data_dir} counts classes missing from label_map.txt: {unknown}"
            )
    return {"class_names": class_names, "files": files, "clips": clips}


def make_split_dataset(
    cfg: ExperimentConfig, data_dir: str, files: list[str], *, split: str, **options: Any
) -> Any:
    """The input pipeline over one split: the shards in ``files``, or the TFDS dataset.

    ``options`` are the :func:`model.data.input.make_dataset` arguments besides the clip shape,
    which comes from ``cfg.data``.
    """
    from model.data.input import make_dataset, make_tfds_dataset

    shape = {
        "num_classes": cfg.data.num_classes,
        "num_frames": cfg.data.num_frames,
        "image_size": cfg.data.image_size,
        "temporal_stride": cfg.data.temporal_stride,
    }
    if cfg.data.tfds_name:
        return make_tfds_dataset(
            cfg.data.tfds_name, split=split, data_dir=data_dir, **shape, **options
        )
    return make_dataset(files, **shape, **options)


# ------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------


def base_spec(cfg: ExperimentConfig) -> Any:
    """The AssembleNetSpec the config names: ``model.structure_file`` if set, else the preset."""
    from model import presets, structures

    if cfg.model.structure_file:
        return structures.load_structure_file(cfg.model.structure_file)
    return presets.get_preset(cfg.model.preset)


def build_model_for(cfg: ExperimentConfig) -> Any:
    """Builds the configured network (inside the caller's strategy scope)."""
    from model.assemblenet import build_model

    return build_model(
        base_spec(cfg),
        num_classes=cfg.data.num_classes,
        num_frames=cfg.data.num_frames,
        image_size=cfg.data.image_size,
        **cfg.model_overrides(),
    )


# ------------------------------------------------------------------------------------------
# The step
# ------------------------------------------------------------------------------------------


def _resolve(
    config: str | Path | ExperimentConfig, overrides: Mapping[str, object] | None
) -> tuple[ExperimentConfig, str]:
    if isinstance(config, ExperimentConfig):
        if overrides:
            from model.config import from_dict, to_dict

            return from_dict(to_dict(config), overrides, "<config object>"), "<config object>"
        return validate(config), "<config object>"
    return load_config(config, overrides), str(config)


def train(
    config: str | Path | ExperimentConfig,
    *,
    data_dir: str,
    model_dir: str,
    overrides: Mapping[str, object] | None = None,
    build_model_fn: Callable[[ExperimentConfig], Any] | None = None,
    tpu: str | None = None,
    mirrored_devices: list[str] | None = None,
) -> dict[str, Any]:
    """Trains (or resumes training of) one experiment and writes the model directory.

    Args:
        config: experiment YAML path, shipped config name, or an :class:`ExperimentConfig`.
        data_dir: preprocessed data directory (local or ``gs://``) with ``train-*.tfrecord``,
            ``label_map.txt`` and ``stats.json``; with ``data.tfds_name`` set, a TFDS data
            directory holding that prepared dataset.
        model_dir: output directory (local or ``gs://``); an existing ``checkpoints/`` in it is
            resumed.
        overrides: dotted config overrides (``{"train.steps": 10}``).
        build_model_fn: ``cfg -> keras.Model`` replacing the AssembleNet builder (tests use a
            stand-in network); called inside the strategy scope.
        tpu: TPU address for the TPU strategy (default ``$TPU_NAME`` or ``local``).
        mirrored_devices: devices of the mirrored strategy (default every GPU).

    Returns:
        The training summary (also written to ``model_dir/train_summary.json``).

    Raises:
        ConfigError: bad config or config/device mismatch (before any compute).
        DataError: bad data directory (before any compute).
    """
    cfg, source = _resolve(config, overrides)
    data = check_data(data_dir, cfg, "train")
    absl_log = logging.getLogger("absl")
    if absl_log.level == logging.NOTSET:
        # TensorFlow logs each checkpoint's shard timing at INFO through absl, between the
        # progress lines; an explicitly configured level is left alone.
        absl_log.setLevel(logging.WARNING)
    log.info(
        "training %s (%s) on %s: %d classes, %s clips, %d steps of %d",
        cfg.model.preset if not cfg.model.structure_file else cfg.model.structure_file,
        source,
        data_dir,
        cfg.data.num_classes,
        data["clips"] if data["clips"] is not None else "?",
        cfg.train.steps,
        cfg.train.batch_size,
    )

    import keras
    import tensorflow as tf

    from model import train_lib

    devices, policy = train_lib.prepare_devices(cfg, tpu=tpu, devices=mirrored_devices)
    log.info("devices: %s x%d, dtype policy %s", devices.kind, devices.num_replicas, policy)
    keras.utils.set_random_seed(cfg.train.seed)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()

    with devices.strategy.scope():
        network = (build_model_fn or build_model_for)(cfg)
        sync_bn = train_lib.use_sync_batch_norm(cfg, devices)
        if sync_bn:
            log.info(
                "synchronized batch norm on %d layers", train_lib.synchronize_batch_norm(network)
            )
        clip_dtype = resolve_data_dtype(cfg, devices.on_tpu)
        canvas = resolve_device_canvas(cfg, devices.accelerated)
        log.info(
            "spatial augmentation on the %s",
            f"device ({canvas[0]}x{canvas[1]} canvas)" if canvas else "host",
        )
        trainee = network
        if canvas is not None:
            trainee = train_lib.with_device_augmentation(
                network,
                num_frames=cfg.data.num_frames,
                image_size=cfg.data.image_size,
                clip_dtype=clip_dtype,
            )
        train_lib.compile_for_training(
            trainee,
            cfg.train,
            steps_per_execution=train_lib.effective_steps_per_execution(cfg.train, devices),
        )

    def dataset(seed_offset: int) -> tf.data.Dataset:
        return make_split_dataset(
            cfg,
            data_dir,
            data["files"],
            split="train",
            batch_size=cfg.train.batch_size,
            training=True,
            dtype=clip_dtype,
            shuffle_buffer=cfg.data.shuffle_buffer,
            random_flip=cfg.data.random_flip,
            seed=cfg.train.seed + seed_offset,
            deterministic=True,  # the same order on every run and after every resume
            device_canvas=canvas,
        )

    result = train_lib.run_training_loop(
        trainee,
        dataset,
        checkpoint_model=network,
        devices=devices,
        train=cfg.train,
        checkpoint_dir=_join(model_dir, "checkpoints"),
        log_dir=_join(model_dir, "logs", "train"),
    )

    started = time.perf_counter()
    learned = write_model_dir(network, cfg, model_dir, data["class_names"])
    write_training_curves(_join(model_dir, "logs", "train"), _join(model_dir, CURVES_FILE))
    summary = {
        "config": source,
        "data_dir": data_dir,
        "model_dir": model_dir,
        "steps": result.final_step,
        "initial_step": result.initial_step,
        "resumed_from": result.resumed_from,
        "data_position_restored": result.data_position_restored,
        "wall_s": round(result.wall_s, 3),
        "export_s": round(time.perf_counter() - started, 3),
        "steps_per_s": round(result.steps_per_s, 4),
        "clips_per_s": round(result.steps_per_s * cfg.train.batch_size, 3),
        "final_loss": result.last_logs.get("loss"),
        "final_accuracy": result.last_logs.get("accuracy"),
        "num_params": int(network.count_params()),
        "train_clips": data["clips"],
        "num_classes": cfg.data.num_classes,
        "strategy": devices.kind,
        "num_replicas": devices.num_replicas,
        "precision": policy,
        "sync_batch_norm": sync_bn,
        "spatial_augmentation": "host" if canvas is None else "device",
        "learned_structure": learned,
    }
    write_text(_join(model_dir, SUMMARY_FILE), json.dumps(summary, indent=2) + "\n")
    log.info("model directory complete: %s", model_dir)
    return summary


def write_model_dir(
    network: Any, cfg: ExperimentConfig, model_dir: str, class_names: list[str]
) -> str | None:
    """Writes model.keras, saved_model/, experiment.yaml, label_map.txt and (search runs)
    learned_structure.json. Returns the learned structure's path or ``None``."""
    from model.data import schema
    from model.export import export_saved_model

    learned_path = None
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        network.save(staging / MODEL_FILE)
        publish(staging / MODEL_FILE, _join(model_dir, MODEL_FILE))
        export_saved_model(
            network,
            staging / SAVED_MODEL_DIR,
            num_frames=cfg.data.num_frames,
            image_size=cfg.data.image_size,
            temporal_stride=cfg.data.temporal_stride,
        )
        publish(staging / SAVED_MODEL_DIR, _join(model_dir, SAVED_MODEL_DIR))
        if cfg.model.learnable_edges:
            from model import search, structures

            spec = dataclasses.replace(base_spec(cfg), **_spec_fields(cfg))
            learned = search.learned_structure(network, spec, cfg.model.prune_below)
            structures.save_structure_file(learned, staging / LEARNED_STRUCTURE_FILE)
            learned_path = _join(model_dir, LEARNED_STRUCTURE_FILE)
            publish(staging / LEARNED_STRUCTURE_FILE, learned_path)
    write_text(_join(model_dir, EXPERIMENT_FILE), dump_config(cfg))
    write_text(_join(model_dir, schema.LABEL_MAP_FILE), schema.format_label_map(class_names))
    return learned_path


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    """The scalars of the TensorBoard event files in ``log_dir``: tag -> [(step, value)].

    Steps are sorted; where a resumed job logged a step again, its (later) value wins.
    """
    import tensorflow as tf

    series: dict[str, dict[int, float]] = {}
    # Event file names carry their creation time, so name order is write order.
    for path in sorted(tf.io.gfile.glob(_join(log_dir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = (
                    float(tf.make_ndarray(value.tensor))
                    if value.HasField("tensor")
                    else value.simple_value
                )
                series.setdefault(value.tag, {})[int(event.step)] = number
    return {tag: sorted(points.items()) for tag, points in series.items()}


def write_training_curves(log_dir: str, dest: str) -> bool:
    """Plots loss, accuracy, learning rate and throughput by step to the PNG ``dest``.

    Returns False (and writes nothing) when the log holds no training scalars.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    scalars = read_scalars(log_dir)
    tags = [tag for tag in CURVE_TAGS if scalars.get(tag)]
    if not tags:
        return False
    figure, axes = plt.subplots(1, len(tags), figsize=(4.2 * len(tags), 3.4), squeeze=False)
    for ax, tag in zip(axes[0], tags, strict=True):
        steps, values = zip(*scalars[tag], strict=True)
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3)
        ax.set_title(CURVE_TAGS[tag])
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    figure.suptitle("Training (each point is the mean over its logging window)")
    figure.tight_layout()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CURVES_FILE
        figure.savefig(path, format="png", dpi=100)
        plt.close(figure)
        publish(path, dest)
    return True


def _spec_fields(cfg: ExperimentConfig) -> dict[str, object]:
    # learnable_edges is a build option, not a spec field.
    return {k: v for k, v in cfg.model_overrides().items() if k != "learnable_edges"}


def load_experiment(model_dir: str) -> ExperimentConfig:
    """The resolved config a training run wrote to ``model_dir/experiment.yaml``."""
    import tensorflow as tf

    path = _join(model_dir, EXPERIMENT_FILE)
    if not tf.io.gfile.exists(path):
        raise DataError(f"{model_dir} is not a model directory: {EXPERIMENT_FILE} is missing")
    return load_config(path)
