"""Training machinery: device strategy, dtype policy, learning-rate schedule, resumable loop.

The loop is Keras's own compiled train step (``model.make_train_function``, which runs
``steps_per_execution`` steps per call inside one ``tf.function``, as ``fit`` does), driven by a
small host loop that owns what ``fit`` cannot give a preemptible TPU job: a
``tf.train.CheckpointManager`` holding the model, the optimizer (its ``iterations`` counter is
the step counter and the schedule position) and, where the strategy allows it, the input
iterator (the exact data position, shuffle buffer included). A restarted job restores the
latest checkpoint and continues to the configured step count; with op determinism on it ends
with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import tensorflow as tf

from model.config import ExperimentConfig, TrainConfig, resolve_precision, validate_for_replicas
from model.data import video_ops
from model.errors import ConfigError

log = logging.getLogger(__name__)

# Environment variables that Cloud TPU VMs (and Vertex AI training on TPU VMs) set.
TPU_ENV_VARS: tuple[str, ...] = ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "TPU_WORKER_HOSTNAMES")


# ------------------------------------------------------------------------------------------
# Devices and precision
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Devices:
    """The chosen strategy and what the rest of the run needs to know about it."""

    strategy: tf.distribute.Strategy
    kind: str  # "tpu" | "mirrored" | "gpu" | "cpu" | "default"
    num_replicas: int

    @property
    def on_tpu(self) -> bool:
        return self.kind == "tpu"

    @property
    def accelerated(self) -> bool:
        """Whether the replicas are TPU or GPU devices rather than the host's CPU."""
        if self.kind in ("tpu", "gpu"):
            return True
        if self.kind != "mirrored":
            return False
        return any("GPU" in name.upper() for name in self.strategy.extended.worker_devices)


def tpu_attached(environ: dict[str, str] | None = None) -> bool:
    """Whether this host looks like a Cloud TPU VM (one of :data:`TPU_ENV_VARS` is set)."""
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in TPU_ENV_VARS)


def _connect_tpu(tpu: str | None) -> tf.distribute.Strategy:
    # On a TPU VM the TPU is local; TPU_NAME names a remote node on the older architecture.
    address = tpu or os.environ.get("TPU_NAME") or "local"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as error:
        raise ConfigError(
            f"train.distribution=tpu but no TPU could be reached at {address!r}: {error}"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def select_strategy(
    distribution: str,
    *,
    tpu: str | None = None,
    devices: Sequence[str] | None = None,
    environ: dict[str, str] | None = None,
) -> Devices:
    """Chooses the distribution strategy.

    Args:
        distribution: ``auto`` (TPU if this is a TPU VM, several GPUs -> MirroredStrategy, one
            GPU -> that GPU, else the default CPU strategy), ``tpu``, ``mirrored``, ``gpu`` or
            ``cpu``.
        tpu: TPU address for TPUClusterResolver (default ``$TPU_NAME`` or ``local``).
        devices: devices for ``mirrored`` (default: every GPU, else every logical CPU).
        environ: environment to read (tests); default ``os.environ``.

    Raises:
        ConfigError: the requested accelerator is missing.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if distribution == "auto":
        if tpu_attached(environ):
            distribution = "tpu"
        elif len(gpus) > 1:
            distribution = "mirrored"
        elif gpus:
            distribution = "gpu"
        else:
            return Devices(tf.distribute.get_strategy(), "default", 1)
    if distribution == "tpu":
        strategy = _connect_tpu(tpu)
    elif distribution == "mirrored":
        if devices is None:
            devices = [d.name for d in gpus] or [
                d.name for d in tf.config.list_logical_devices("CPU")
            ]
        strategy = tf.distribute.MirroredStrategy(list(devices))
    elif distribution == "gpu":
        if not gpus:
            raise ConfigError("train.distribution=gpu but TensorFlow sees no GPU")
        strategy = tf.distribute.OneDeviceStrategy(gpus[0].name)
    elif distribution == "cpu":
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    else:
        raise ConfigError(f"unknown train.distribution {distribution!r}")
    return Devices(strategy, distribution, int(strategy.num_replicas_in_sync))


def prepare_devices(cfg: ExperimentConfig, **kwargs: Any) -> tuple[Devices, str]:
    """Selects the strategy, validates the config against it and sets the Keras dtype policy.

    Returns:
        (devices, policy name) - the policy is already set globally.
    """
    devices = select_strategy(cfg.train.distribution, **kwargs)
    validate_for_replicas(cfg, devices.num_replicas, on_tpu=devices.on_tpu)
    policy = resolve_precision(cfg, devices.on_tpu)
    keras.mixed_precision.set_dtype_policy(policy)
    return devices, policy


def use_sync_batch_norm(cfg: ExperimentConfig, devices: Devices) -> bool:
    """Synchronized BN: as configured, else on for TPU (the reference's default) only."""
    if cfg.model.sync_batch_norm is not None:
        return cfg.model.sync_batch_norm
    return devices.on_tpu


def synchronize_batch_norm(model: keras.Model) -> int:
    """Switches every BatchNormalization layer of ``model`` to cross-replica statistics.

    Keras reads ``synchronized`` when the layer is called in a replica context, so switching it
    before the first traced step is enough; ``get_config`` then records it. Returns the number
    of layers switched.
    """
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count


# ------------------------------------------------------------------------------------------
# Learning rate
# ------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="assemblenet")
class MomentumSGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD`` whose momentum update is one fused op per variable on TensorFlow.

    Keras 3 writes the momentum update as five element-wise ops and two assignments per
    variable; for AssembleNet-50's 445 variables that is ~3,000 small ops per step, about 7 %
    of a CPU training step (``benchmarks/model_step.py``). TensorFlow's
    ``ResourceApplyKerasMomentum`` kernel computes exactly Keras's update in one pass:
    ``m = momentum * m - lr * g`` then ``w += m`` (Nesterov: ``w += momentum * m - lr * g``).
    Same slots, config and checkpoints as ``keras.optimizers.SGD``; sparse gradients, other
    backends and momentum 0 take Keras's own path.
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if (
            keras.backend.backend() != "tensorflow"
            or self.momentum == 0
            or isinstance(gradient, tf.IndexedSlices)
        ):
            super().update_step(gradient, variable, learning_rate)
            return
        momentum = self.momentums[self._get_variable_index(variable)]
        var = variable.value if isinstance(variable, keras.Variable) else variable
        accum = momentum.value if isinstance(momentum, keras.Variable) else momentum
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=var.handle,
            accum=accum.handle,
            lr=tf.cast(learning_rate, var.dtype),
            grad=tf.cast(gradient, var.dtype),
            momentum=tf.cast(self.momentum, var.dtype),
            use_nesterov=self.nesterov,
        )


@keras.saving.register_keras_serializable(package="assemblenet")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 followed by a cosine, exponential-staircase or constant schedule.

    For step s, with peak p and warmup w (the schedule's own clock starts at 0, as Model
    Garden's ``LinearWarmup`` wrapper does):

    * s < w: ``decayed(w) * s / w``;
    * cosine: ``p * (alpha + (1 - alpha) * (1 + cos(pi * min(s, total) / total)) / 2)``;
    * exponential: ``p * rate ** floor(s / decay_steps)``;
    * constant: ``p``.
    """

    def __init__(
        self,
        peak: float,
        *,
        kind: str = "cosine",
        total_steps: int = 1,
        warmup_steps: int = 0,
        decay_steps: int = 1,
        decay_rate: float = 1.0,
        alpha: float = 0.0,
    ) -> None:
        if kind not in ("cosine", "exponential", "constant"):
            raise ConfigError(f"unknown learning-rate schedule {kind!r}")
        self.peak = float(peak)
        self.kind = kind
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = int(decay_steps)
        self.decay_rate = float(decay_rate)
        self.alpha = float(alpha)

    def _decayed(self, step: Any) -> Any:
        ops = keras.ops
        if self.kind == "cosine":
            progress = ops.minimum(step, self.total_steps) / float(self.total_steps)
            cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
            return self.peak * (self.alpha + (1.0 - self.alpha) * cosine)
        if self.kind == "exponential":
            return self.peak * ops.power(self.decay_rate, ops.floor(step / self.decay_steps))
        return self.peak + 0.0 * step

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        decayed = self._decayed(step)
        if not self.warmup_steps:
            return decayed
        warm = self._decayed(float(self.warmup_steps)) * step / float(self.warmup_steps)
        return keras.ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "kind": self.kind,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "alpha": self.alpha,
        }


def learning_rate_schedule(train: TrainConfig) -> WarmupSchedule:
    """The schedule described by the ``train`` section."""
    return WarmupSchedule(
        train.learning_rate,
        kind=train.schedule,
        total_steps=train.steps,
        warmup_steps=train.warmup_steps,
        decay_steps=train.decay_steps,
        decay_rate=train.decay_rate,
        alpha=train.alpha,
    )


def effective_steps_per_execution(train: TrainConfig, devices: Devices) -> int:
    """``train.steps_per_execution``, except 1 under MirroredStrategy.

    Keras 3.15's multi-step loop (``tf.while_loop`` over ``get_next_as_optional``) fails on a
    MirroredStrategy's distributed iterator with "You must feed a value for placeholder tensor"
    (reproduced on two logical CPUs); one step per call works, and on GPUs the per-call host
    overhead the option saves is small next to a step.
    """
    if devices.kind == "mirrored" and train.steps_per_execution > 1:
        log.warning(
            "steps_per_execution=%d is not supported by Keras under MirroredStrategy; using 1",
            train.steps_per_execution,
        )
        return 1
    return train.steps_per_execution


def compile_for_training(
    model: keras.Model, train: TrainConfig, *, steps_per_execution: int | None = None
) -> keras.optimizers.Optimizer:
    """Compiles ``model`` with SGD (momentum, Nesterov), the warmup schedule and softmax
    cross-entropy on logits with label smoothing; builds the optimizer's slots so a checkpoint
    can be restored into them. Call inside the strategy scope. Returns the optimizer.

    ``steps_per_execution`` overrides ``train.steps_per_execution`` (see
    :func:`effective_steps_per_execution`).
    """
    optimizer = MomentumSGD(
        learning_rate=learning_rate_schedule(train),
        momentum=train.momentum,
        nesterov=train.nesterov,
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=train.label_smoothing
        ),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution or train.steps_per_execution,
    )
    # The compiled optimizer may be a LossScaleOptimizer wrapper under mixed_float16.
    model.optimizer.build(model.trainable_variables)
    return model.optimizer


# ------------------------------------------------------------------------------------------
# Spatial augmentation on the accelerator
# ------------------------------------------------------------------------------------------


class DeviceAugmentation(keras.layers.Layer):
    """Packed crops from the input pipeline (``device_canvas``) to clips, inside the train step.

    No weights; it runs in float32 whatever the dtype policy and emits ``output_dtype``.
    """

    def __init__(self, image_size: int, output_dtype: str, **kwargs: Any) -> None:
        super().__init__(dtype="float32", **kwargs)
        self.image_size = image_size
        self.output_dtype = output_dtype

    def call(self, inputs: dict[str, Any]) -> Any:
        return video_ops.crop_resize_on_device(
            inputs["frames"], inputs["crop"], image_size=self.image_size, dtype=self.output_dtype
        )

    def compute_output_spec(self, inputs: dict[str, Any]) -> keras.KerasTensor:
        batch, frames = inputs["frames"].shape[:2]
        size = self.image_size
        return keras.KerasTensor((batch, frames, size, size, 3), dtype=self.output_dtype)


def with_device_augmentation(
    network: keras.Model, *, num_frames: int, image_size: int, clip_dtype: str
) -> keras.Model:
    """The model to train when the input pipeline leaves the spatial work to the accelerator.

    It takes ``{"frames", "crop"}`` batches and runs :class:`DeviceAugmentation` before
    ``network``, whose variables it shares: train it, but checkpoint and export ``network``.
    Call inside the strategy scope.
    """
    inputs = {
        "frames": keras.Input((num_frames, None, None), dtype="int32", name="frames"),
        "crop": keras.Input((3,), dtype="int32", name="crop"),
    }
    clips = DeviceAugmentation(image_size, clip_dtype, name="device_augmentation")(inputs)
    return keras.Model(inputs, network(clips), name=f"{network.name}_device_augmented")


# ------------------------------------------------------------------------------------------
# The resumable loop
# ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class LoopResult:
    """What :func:`run_training_loop` did."""

    initial_step: int
    final_step: int
    resumed_from: str | None
    wall_s: float
    steps_per_s: float
    last_logs: dict[str, float] = field(default_factory=dict)
    data_position_restored: bool = False


def make_iterator(devices: Devices, dataset: tf.data.Dataset) -> Any:
    """An iterator over ``dataset`` placed on the strategy's replicas."""
    if devices.kind == "default":
        return iter(dataset)
    return iter(devices.strategy.experimental_distribute_dataset(dataset))


def _input_checkpointable(dataset: tf.data.Dataset, iterator: Any) -> bool:
    """Whether checkpoints can hold the input position (shuffle buffers included).

    The distributed iterators of Mirrored/TPU strategies are not trackable, and a pipeline
    holding a Python function (``tf.py_function``, a generator source) cannot be serialized; those
    jobs resume with the input reseeded by the step instead.
    """
    if not isinstance(iterator, tf.__internal__.tracking.Trackable):
        return False
    serialize = getattr(dataset, "_as_serialized_graph", None)
    if serialize is None:  # a private method, stable across TF 2.x; without it, assume it works
        return True
    try:
        # The external-state check that saving the iterator applies, on the dataset graph only.
        serialize(external_state_policy=tf.data.experimental.ExternalStatePolicy.FAIL)
    except (tf.errors.FailedPreconditionError, tf.errors.UnimplementedError) as error:
        log.warning(
            "the input position cannot be checkpointed (%s); a resumed job reseeds the data "
            "order by step instead",
            str(error).strip().splitlines()[0][:200],
        )
        return False
    return True


def _restore_input_position(iterator: Any, path: str) -> bool:
    """Restores the input position saved in checkpoint ``path``; False if it cannot.

    It cannot when the checkpoint holds none (its job could not save it) or when the input
    pipeline has changed since (a different config, e.g. the other ``spatial_augmentation``).
    """
    # A failed restore cannot be marked partial, and TensorFlow then logs every value of the
    # checkpoint it did not use when the restore is freed; the model's are expected here.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        status = tf.train.Checkpoint(iterator=iterator).restore(path)
        status.assert_existing_objects_matched().expect_partial()
        return True
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, AssertionError) as error:
        # TensorFlow prefixes the cause with the failing function's name in {{...}}.
        reason = str(error).rsplit("}}", 1)[-1].strip().splitlines()[0][:200]
    finally:
        gc.collect()
        tf_logger.setLevel(level)
    log.warning(
        "the input position in %s does not fit this input pipeline (%s); the data order is "
        "reseeded by step instead",
        path,
        reason,
    )
    return False


def optimizer_step(optimizer: keras.optimizers.Optimizer) -> int:
    """The optimizer's iteration counter (the global step)."""
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def run_training_loop(
    model: keras.Model,
    make_dataset: Callable[[int], tf.data.Dataset],
    *,
    devices: Devices,
    train: TrainConfig,
    checkpoint_dir: str,
    log_dir: str | None = None,
    examples_per_step: int | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    checkpoint_model: keras.Model | None = None,
) -> LoopResult:
    """Trains a compiled ``model`` to ``train.steps`` optimizer steps, resuming if it can.

    Args:
        model: compiled (see :func:`compile_for_training`) inside ``devices.strategy.scope()``.
        make_dataset: ``seed_offset -> dataset`` of (clips [B, T, S, S, 3], one-hot [B, K]),
            repeating and with the global batch. The offset is 0 unless the data position
            could not be restored (then it is the resumed step, so no data order repeats).
        devices: from :func:`select_strategy`.
        train: the train section (steps, steps_per_execution, checkpoint/log intervals).
        checkpoint_dir: local or ``gs://`` directory for the CheckpointManager.
        log_dir: TensorBoard directory (scalars ``loss``, ``accuracy``, ``learning_rate``,
            ``examples_per_second``); ``None`` writes none.
        examples_per_step: global batch size, for throughput; default ``train.batch_size``.
        on_checkpoint: called with the step after each checkpoint is written (tests use it).
        checkpoint_model: the network whose weights checkpoints hold, when ``model`` wraps it
            (:func:`with_device_augmentation`); default ``model``. Checkpoints are then the
            same whichever side augments, and a job may resume with the other setting.

    Returns:
        A :class:`LoopResult`; the model holds the final weights.
    """
    optimizer = model.optimizer
    examples_per_step = examples_per_step or train.batch_size
    checkpoint_model = checkpoint_model or model
    probe = tf.train.Checkpoint(model=checkpoint_model, optimizer=optimizer)
    manager_probe = tf.train.CheckpointManager(probe, checkpoint_dir, max_to_keep=None)
    latest = manager_probe.latest_checkpoint
    with devices.strategy.scope():
        dataset = make_dataset(0)
        iterator = make_iterator(devices, dataset)
    keeps_data = _input_checkpointable(dataset, iterator)
    position_restored = False
    if latest:
        # Weights first; the input position (if any) separately, as it may not fit.
        probe.restore(latest).expect_partial().assert_existing_objects_matched()
        resumed_step = int(latest.rsplit("-", 1)[1])  # checkpoints are numbered by step
        log.info("resumed from %s at step %d", latest, optimizer_step(optimizer))
        if keeps_data:
            position_restored = _restore_input_position(iterator, latest)
        if not position_restored:
            # Reseed by step so the resumed job does not replay the data order from the start.
            with devices.strategy.scope():
                iterator = make_iterator(devices, make_dataset(resumed_step))
    items: dict[str, Any] = {"model": checkpoint_model, "optimizer": optimizer}
    if keeps_data:
        items["iterator"] = iterator
    checkpoint = tf.train.Checkpoint(**items)
    manager = tf.train.CheckpointManager(
        checkpoint, checkpoint_dir, max_to_keep=train.keep_checkpoints
    )

    initial_step = optimizer_step(optimizer)
    writer = tf.summary.create_file_writer(log_dir) if log_dir else None
    model.make_train_function()
    schedule = learning_rate_schedule(train)
    logs: dict[str, float] = {}
    step = initial_step
    start = time.perf_counter()
    window_start, window_step = start, step
    if step >= train.steps:
        log.info("already at step %d of %d: nothing to train", step, train.steps)
    while step < train.steps:
        raw_logs = model.train_function(iterator)
        step = optimizer_step(optimizer)
        if step % train.log_every == 0 or step >= train.steps:
            logs = {k: float(keras.ops.convert_to_numpy(v)) for k, v in raw_logs.items()}
            now = time.perf_counter()
            rate = (step - window_step) / max(now - window_start, 1e-9)
            eta = (train.steps - step) / rate if rate > 0 else float("nan")
            lr = float(keras.ops.convert_to_numpy(schedule(step)))
            log.info(
                "step %d/%d  loss %.4f  accuracy %.3f  lr %.5f  %.2f steps/s  %.1f clips/s  ETA %s",
                step,
                train.steps,
                logs.get("loss", float("nan")),
                logs.get("accuracy", float("nan")),
                lr,
                rate,
                rate * examples_per_step,
                _format_eta(eta),
            )
            if writer is not None:
                with writer.as_default(step=step):
                    for name, value in logs.items():
                        tf.summary.scalar(name, value)
                    tf.summary.scalar("learning_rate", lr)
                    tf.summary.scalar("examples_per_second", rate * examples_per_step)
                writer.flush()
            window_start, window_step = now, step
            model.reset_metrics()  # each progress line reports its own window, not a running mean
        if step % train.checkpoint_every == 0 or step >= train.steps:
            manager.save(checkpoint_number=step)
            if on_checkpoint is not None:
                on_checkpoint(step)
    wall = time.perf_counter() - start
    if writer is not None:
        writer.close()
    return LoopResult(
        initial_step=initial_step,
        final_step=step,
        resumed_from=latest,
        wall_s=wall,
        steps_per_s=(step - initial_step) / wall if wall > 0 else 0.0,
        last_logs=logs,
        data_position_restored=position_restored,
    )


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}"
