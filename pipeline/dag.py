"""The training pipeline: preprocess -> train -> evaluate -> register, as one Kubeflow DAG.

:func:`build_pipeline` wires the steps from explicit arguments (the compile target and the image
references) and returns the kfp pipeline function. The same wiring compiles for two targets:

* ``vertex``: preprocessing launches Beam on Dataflow with our SDK container, training runs as a
  Vertex AI custom job on Cloud TPU (a raw worker pool spec, so ``tpu_topology`` and the
  ``cloud-tpu`` machine both fit), evaluation and registration run as container tasks on our
  images, referenced by immutable tags.
* ``local``: the same DAG for ``kfp.local.SubprocessRunner(use_venv=False)``: Beam DirectRunner,
  CPU training in-process, no Docker.

Each step's logic is a plain typed function in ``components/``; the kfp shells below only map
artifacts to paths and call it. Shell bodies import our package (it is installed in every image),
so they never need ``packages_to_install``.

References: kfp 2.17 ``dsl`` (ExitHandler, set_retry, set_caching_options) and
google-cloud-pipeline-components 2.22 ``CustomTrainingJobOp``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from kfp import dsl
from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
)

from model.errors import ConfigError
from pipeline.images import ImageSet

Target = Literal["vertex", "local"]
TARGETS: tuple[str, ...] = ("vertex", "local")
PIPELINE_NAME = "assemblenet-training"

# Vertex placeholders the service fills in at run time, so that steps inherit the project,
# region, identity and encryption key of the PipelineJob that submit.py creates.
PROJECT_PLACEHOLDER = "{{$.pipeline_google_cloud_project_id}}"
LOCATION_PLACEHOLDER = "{{$.pipeline_google_cloud_location}}"
SERVICE_ACCOUNT_PLACEHOLDER = "{{$.pipeline_service_account}}"
KMS_KEY_PLACEHOLDER = "{{$.pipeline_encryption_key_name}}"


@dataclasses.dataclass(frozen=True, slots=True)
class TrainerResources:
    """The Vertex AI custom job machine the training step runs on.

    Attributes:
        machine_type: ``cloud-tpu`` for TPU v2/v3 slices; ``ct5lp-hightpu-4t`` (v5e) or
            ``ct6e-standard-4t`` (v6e) style machines carry the chips themselves.
        accelerator_type: Vertex accelerator enum name, e.g. ``TPU_V3``, ``TPU_V5_LITEPOD``.
        accelerator_count: chips per replica (8 for a v3-8, matching the paper's setup).
        tpu_topology: slice topology (e.g. ``2x2``) for v5e/v6e machines; ``None`` for v2/v3.
        replica_count: number of replicas in the single worker pool.
        boot_disk_size_gb: boot disk size of each replica.
    """

    machine_type: str = "cloud-tpu"
    accelerator_type: str = "TPU_V3"
    accelerator_count: int = 8
    tpu_topology: str | None = None
    replica_count: int = 1
    boot_disk_size_gb: int = 100

    def __post_init__(self) -> None:
        if self.accelerator_count < 1 or self.replica_count < 1:
            raise ConfigError("accelerator_count and replica_count must be >= 1")
        if self.machine_type.startswith(("ct5", "ct6")) and not self.tpu_topology:
            raise ConfigError(
                f"machine type {self.machine_type} is a v5e/v6e TPU host: set tpu_topology "
                "(e.g. 2x2)"
            )

    def machine_spec(self) -> dict[str, Any]:
        """The ``machine_spec`` of a Vertex ``WorkerPoolSpec``."""
        spec: dict[str, Any] = {
            "machine_type": self.machine_type,
            "accelerator_type": self.accelerator_type,
            "accelerator_count": self.accelerator_count,
        }
        if self.tpu_topology:
            spec["tpu_topology"] = self.tpu_topology
        return spec


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries with exponential backoff for a step that can fail transiently."""

    num_retries: int
    backoff_duration: str = "60s"
    backoff_factor: float = 2.0
    backoff_max_duration: str = "3600s"

    def apply(self, task: dsl.PipelineTask) -> dsl.PipelineTask:
        return task.set_retry(
            num_retries=self.num_retries,
            backoff_duration=self.backoff_duration,
            backoff_factor=self.backoff_factor,
            backoff_max_duration=self.backoff_max_duration,
        )


# Dataflow job launches and Vertex API calls fail transiently (quota, 503s, stock-outs); a TPU
# custom job can die with an internal error (googleapis/python-aiplatform#2231), so it gets one
# retry after a long pause. Evaluation is deterministic and local to its container: no retry.
PREPROCESS_RETRY = RetryPolicy(num_retries=2, backoff_duration="120s")
TRAIN_RETRY = RetryPolicy(num_retries=1, backoff_duration="600s")
REGISTER_RETRY = RetryPolicy(num_retries=3, backoff_duration="30s", backoff_max_duration="600s")
# Locally a failure is almost always deterministic (bad data, bad config): fail fast, except for
# registration, whose backend may be a remote registry.
LOCAL_REGISTER_RETRY = RetryPolicy(num_retries=1, backoff_duration="1s", backoff_max_duration="5s")


# --------------------------------------------------------------------------------------------
# kfp shells. Their bodies are shipped as source into the container, so they import everything
# they use and contain no logic beyond mapping artifacts to paths.
# --------------------------------------------------------------------------------------------


def preprocess_op(
    data_location: str,
    source_type: str,
    split: int,
    runner: str,
    beam_options: dict,
    extra_beam_options: dict,
    labels: dict,
    dataset: Output[Dataset],
) -> NamedTuple("PreprocessOutputs", [("data_dir", str), ("train_clips", int)]):
    """Videos -> TFRecord shards + label map + stats (components.preprocess).

    ``data_location`` is, per ``source_type``: ``ucf101`` a directory holding ``videos/`` and
    ``ucfTrainTestlist/``; ``folders`` a directory of ``<Class>/`` video folders; ``manifest`` a
    CSV manifest. ``beam_options`` (compiled per target) updated by ``extra_beam_options`` (a
    pipeline parameter) fill the matching :class:`PreprocessOptions` fields (empty values are
    dropped, so unset run-time placeholders fall back to Beam's defaults); other keys and
    ``labels`` pass through as Beam flags.
    """
    import collections
    import dataclasses
    import json

    from components.preprocess import PreprocessOptions, run_preprocess

    root = data_location.rstrip("/")
    sources = {
        "ucf101": {"videos": f"{root}/videos", "splits": f"{root}/ucfTrainTestlist"},
        "folders": {"videos": root},
        "manifest": {"manifest": root},
    }
    fields = {field.name: field for field in dataclasses.fields(PreprocessOptions)}
    typed = {}
    extra = []
    for key, value in sorted({**beam_options, **extra_beam_options}.items()):
        if str(value) == "":
            continue
        if key in fields:
            typed[key] = int(value) if key in ("max_num_workers", "direct_num_workers") else value
        else:
            extra.append(f"--{key}={value}")
    extra += [f"--labels={key}={value}" for key, value in sorted(labels.items())]
    # Dataflow workers write to the artifact's gs:// URI; local runs write to its path.
    out_dir = dataset.uri if runner == "DataflowRunner" else dataset.path
    options = PreprocessOptions(
        source=source_type,
        out=out_dir,
        split=int(split),
        runner=runner,
        extra_beam_args=tuple(extra),
        **sources.get(source_type, {}),
        **typed,
    )
    stats = run_preprocess(options)
    train_clips = int(stats["splits"]["train"]["clips"])
    # Strings only: numbers come back from the executor as floats and would change cache keys.
    dataset.metadata.update(
        {"splits": json.dumps(stats["splits"]), "train_clips": str(train_clips)}
    )
    outputs = collections.namedtuple("PreprocessOutputs", ["data_dir", "train_clips"])
    return outputs(dataset.path, train_clips)


def train_op(
    experiment_config: str,
    config_overrides: dict,
    dataset: Input[Dataset],
    model: Output[Model],
) -> NamedTuple("TrainOutputs", [("final_loss", float)]):
    """Trains on the CPU of this container (local target; Vertex uses a TPU custom job)."""
    import collections

    from components.train import train

    # Pipeline dict parameters travel as JSON structs, which turn ints into floats.
    overrides = {
        key: int(value) if isinstance(value, float) and value.is_integer() else value
        for key, value in config_overrides.items()
    }
    summary = train(
        experiment_config,
        data_dir=dataset.path,
        model_dir=model.path,
        overrides=overrides or None,
    )
    model.metadata.update({"experiment_config": experiment_config})
    loss = summary.get("final_loss")
    outputs = collections.namedtuple("TrainOutputs", ["final_loss"])
    return outputs(float(loss) if loss is not None else float("nan"))


def plan_training_op(
    experiment_config: str,
    config_overrides: dict,
    model: Output[Model],
    experiment: Output[Artifact],
) -> NamedTuple("TrainingPlan", [("model_dir", str), ("config_path", str)]):
    """Validates the experiment and reserves the Model artifact the TPU custom job writes into.

    The resolved config (overrides applied) is written as a YAML artifact, so a bad config fails
    here in seconds rather than on a TPU, and the custom job reads one plain file. Both paths
    are ``/gcs/`` FUSE paths, which the custom job's container sees too.
    """
    import collections
    from pathlib import Path

    from model.config import dump_config, load_config

    # Pipeline dict parameters travel as JSON structs, which turn ints into floats.
    overrides = {
        key: int(value) if isinstance(value, float) and value.is_integer() else value
        for key, value in config_overrides.items()
    }
    config = load_config(experiment_config, overrides or None)
    Path(experiment.path).parent.mkdir(parents=True, exist_ok=True)
    Path(experiment.path).write_text(dump_config(config), encoding="utf-8")
    model.metadata.update({"experiment_config": experiment_config})
    plan = collections.namedtuple("TrainingPlan", ["model_dir", "config_path"])
    return plan(model.path, experiment.path)


def evaluate_op(
    split: str,
    model: Input[Model],
    dataset: Input[Dataset],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
) -> NamedTuple("EvaluationOutputs", [("top_1", float)]):
    """Test-split metrics, confusion matrix and HTML report (components.evaluate)."""
    import collections
    import json
    import shutil
    from pathlib import Path

    from components.evaluate import evaluate

    result = evaluate(model.path, dataset.path, evaluation.path, split=split)
    for key in ("top_1", "top_5", "mean_per_class_accuracy"):
        if key in result:
            metrics.log_metric(key, float(result[key]))
    metrics.log_metric("num_clips", float(result.get("num_clips", 0)))
    names = list(result["class_names"])
    matrix = [list(map(int, row)) for row in result["confusion_matrix"]]
    confusion.log_confusion_matrix(names, matrix)
    # Also as files: the UI reads the metadata, but caches and people look for the artifact file.
    for artifact, content in (
        (metrics, {key: result[key] for key in ("top_1", "top_5", "num_clips") if key in result}),
        (confusion, {"class_names": names, "confusion_matrix": matrix}),
    ):
        Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
        Path(artifact.path).write_text(json.dumps(content, indent=2), encoding="utf-8")
    html = Path(evaluation.path) / "report.html"
    if html.exists():
        shutil.copyfile(html, report.path)
    else:
        Path(report.path).write_text("<p>no report</p>", encoding="utf-8")
    return collections.namedtuple("EvaluationOutputs", ["top_1"])(float(result["top_1"]))


def register_op(
    registry: str,
    default_registry: str,
    model_display_name: str,
    promotion_metric: str,
    min_gain: float,
    labels: dict,
    run_id: str,
    experiment_config: str,
    data_location: str,
    model: Input[Model],
    evaluation: Input[Artifact],
    registration: Output[Artifact],
) -> NamedTuple("RegistrationOutputs", [("version", str), ("champion", bool)]):
    """New registry version (challenger; champion only if it wins) (components.register)."""
    import collections
    import json
    from pathlib import Path

    from components.register import register_model

    metrics_path = str(Path(evaluation.path) / "metrics.json")
    result = register_model(
        model.path,
        metrics_path,
        registry=registry or default_registry,
        model_name=model_display_name,
        run_id=run_id,
        # Lineage on the version: the data and config that produced it (register_model adds the
        # run id and code version); explicit labels win.
        labels={"config": experiment_config, "dataset": data_location, **labels},
        metric=promotion_metric,
        min_gain=float(min_gain),
    )
    # Where the registered files came from (cached upstream tasks live in earlier runs' folders).
    record = {**result, "model_dir": model.path, "metrics_path": metrics_path}
    Path(registration.path).write_text(json.dumps(record, indent=2, default=str), "utf-8")
    registration.metadata.update({k: str(v) for k, v in result.items() if not isinstance(v, dict)})
    outputs = collections.namedtuple("RegistrationOutputs", ["version", "champion"])
    return outputs(str(result.get("version", "")), bool(result.get("champion", False)))


def record_status_op(status: dsl.PipelineTaskFinalStatus, run_status: Output[Artifact]) -> str:
    """Exit handler: records the run's final state (SUCCEEDED / FAILED / CANCELLED) and error."""
    import json
    import logging
    from pathlib import Path

    record = {
        "state": status.state,
        "pipeline_job": status.pipeline_job_resource_name,
        "task": status.pipeline_task_name,
        "error_code": status.error_code,
        "error_message": status.error_message,
    }
    Path(run_status.path).write_text(json.dumps(record, indent=2), encoding="utf-8")
    run_status.metadata.update({"state": str(status.state)})
    level = logging.INFO if status.state == "SUCCEEDED" else logging.ERROR
    logging.getLogger("assemblenet.pipeline").log(level, "pipeline finished: %s", record)
    return str(status.state)


# --------------------------------------------------------------------------------------------
# Wiring.
# --------------------------------------------------------------------------------------------


def _resolved(func: Callable[..., Any]) -> Callable[..., Any]:
    """Evaluates postponed (string) annotations, which kfp's signature reader cannot parse."""
    hints = typing.get_type_hints(func, include_extras=True)
    if hints.get("return") is type(None):
        del hints["return"]
    func.__annotations__ = hints
    return func


def _component(func: Callable[..., Any], image: str) -> Callable[..., dsl.PipelineTask]:
    # install_kfp_package=False: every project image installs kfp from uv.lock, and a run-time
    # pip install would need an index and break reproducibility.
    return dsl.component(_resolved(func), base_image=image, install_kfp_package=False)


def _trainer_args(config_path: Any, data_dir: Any, model_dir: Any) -> list[Any]:
    """Command line of ``assemblenet train`` inside the trainer image (the custom job)."""
    return ["train", "--config", config_path, "--data", data_dir, "--model-dir", model_dir]


def build_pipeline(
    target: Target,
    images: ImageSet,
    *,
    trainer: TrainerResources | None = None,
    default_experiment_config: str | None = None,
    local_registry: str = "local_registry",
    default_model_display_name: str = "assemblenet",
) -> Callable[..., Any]:
    """Builds the training pipeline for one compile target.

    Args:
        target: ``vertex`` (Dataflow + TPU custom job + container tasks) or ``local``
            (kfp.local SubprocessRunner, DirectRunner, CPU training).
        images: immutable references of the beam, trainer and pipeline images.
        trainer: TPU machine of the Vertex custom job (default: v3-8 on ``cloud-tpu``).
        default_experiment_config: default of the ``experiment_config`` parameter (an experiment
            YAML path or a shipped config name); ``ucf101_assemblenet50`` on Vertex, ``synthetic``
            locally.
        local_registry: the registry used when the ``registry`` parameter is empty on the
            local target (an embedded registry directory); on Vertex an empty ``registry`` means
            the Model Registry of the run's own project and region.
        default_model_display_name: default of the ``model_display_name`` parameter.

    Returns:
        The kfp pipeline (a ``GraphComponent``): compile it with ``kfp.compiler`` or call it under
        ``kfp.local.init``.

    Raises:
        ConfigError: unknown target.
    """
    if target not in TARGETS:
        raise ConfigError(f"unknown pipeline target {target!r}; valid: {', '.join(TARGETS)}")
    trainer = trainer or TrainerResources()
    vertex = target == "vertex"
    if default_experiment_config is None:
        default_experiment_config = "ucf101_assemblenet50" if vertex else "synthetic"
    # Placeholders are resolved in task inputs, not in pipeline parameter defaults.
    default_registry = (
        f"vertex://projects/{PROJECT_PLACEHOLDER}/locations/{LOCATION_PLACEHOLDER}"
        if vertex
        else local_registry
    )
    runner = "DataflowRunner" if vertex else "DirectRunner"

    preprocess = _component(preprocess_op, images.beam)
    train = _component(train_op, images.trainer)
    plan_training = _component(plan_training_op, images.pipeline)
    evaluate = _component(evaluate_op, images.trainer)
    register = _component(register_op, images.pipeline)
    record_status = _component(record_status_op, images.pipeline)

    def pipeline(
        data_location: str,
        source_type: str = "ucf101",
        split: int = 1,
        eval_split: str = "test",
        experiment_config: str = default_experiment_config,
        config_overrides: dict = {},  # noqa: B006 - kfp reads the literal as the default value
        model_display_name: str = default_model_display_name,
        promotion_metric: str = "top_1",
        min_gain: float = 0.0,
        labels: dict = {},  # noqa: B006
        registry: str = "",
        dataflow_temp_location: str = "",
        dataflow_subnetwork: str = "",
        dataflow_max_workers: int = 8,
        beam_options: dict = {},  # noqa: B006
        training_timeout: str = "86400s",
    ) -> None:
        """AssembleNet training: preprocess -> train -> evaluate -> register.

        Args:
            data_location: raw videos (UCF101 layout directory, class folders or a manifest;
                gs:// on Vertex).
            source_type: how to read ``data_location`` (``ucf101``, ``folders``, ``manifest``).
            split: UCF101 train/test split number (1-3).
            eval_split: which preprocessed split evaluation reads.
            experiment_config: experiment YAML (path or shipped name) for training.
            config_overrides: dotted-key overrides of the experiment config.
            model_display_name: Model Registry model that receives a new version.
            promotion_metric: metric in metrics.json the promotion gate compares.
            min_gain: minimum improvement over the champion for the new version to become it.
            labels: labels added to the registered version.
            registry: registry URI (``vertex://projects/P/locations/L`` or a local directory);
                empty: the run's own Vertex project (Vertex) or the embedded registry (local).
            dataflow_temp_location: gs:// temp/staging prefix for Dataflow (Vertex only).
            dataflow_subnetwork: Dataflow worker subnetwork URL (Vertex only).
            dataflow_max_workers: Dataflow autoscaling ceiling (Vertex only).
            beam_options: extra Beam/Dataflow options (``PreprocessOptions`` field names, e.g.
                ``machine_type``, ``direct_running_mode``).
            training_timeout: custom job timeout (Vertex only).
        """
        status_task = record_status().set_display_name("record final status")
        status_task.set_caching_options(False)
        with dsl.ExitHandler(status_task, name="training run"):
            target_beam_options: dict[str, Any] = {}
            if vertex:
                target_beam_options = {
                    "project": PROJECT_PLACEHOLDER,
                    "region": LOCATION_PLACEHOLDER,
                    "temp_location": dataflow_temp_location,
                    "sdk_container_image": images.beam,
                    "service_account_email": SERVICE_ACCOUNT_PLACEHOLDER,
                    "dataflow_kms_key": KMS_KEY_PLACEHOLDER,
                    "subnetwork": dataflow_subnetwork,
                    "max_num_workers": dataflow_max_workers,
                }
            prep_task = preprocess(
                data_location=data_location,
                source_type=source_type,
                split=split,
                runner=runner,
                beam_options=target_beam_options,
                extra_beam_options=beam_options,
                labels=labels,
            ).set_display_name("preprocess videos (Beam)")
            if vertex:
                PREPROCESS_RETRY.apply(prep_task)
            prep_task.set_caching_options(True)
            dataset = prep_task.outputs["dataset"]

            if vertex:
                # The custom job cannot produce kfp artifacts, so a tiny step reserves the Model
                # artifact and the job writes into its /gcs/ path.
                plan_task = plan_training(
                    experiment_config=experiment_config, config_overrides=config_overrides
                ).set_display_name("check config, reserve model artifact")
                plan_task.set_caching_options(False)
                model_artifact = plan_task.outputs["model"]
                from google_cloud_pipeline_components.v1.custom_job import CustomTrainingJobOp

                train_task = CustomTrainingJobOp(
                    display_name="assemblenet-train",
                    location=LOCATION_PLACEHOLDER,
                    worker_pool_specs=[
                        {
                            "machine_spec": trainer.machine_spec(),
                            "replica_count": trainer.replica_count,
                            "disk_spec": {
                                "boot_disk_type": "pd-ssd",
                                "boot_disk_size_gb": trainer.boot_disk_size_gb,
                            },
                            "container_spec": {
                                "image_uri": images.trainer,
                                "command": ["assemblenet"],
                                "args": _trainer_args(
                                    plan_task.outputs["config_path"],
                                    prep_task.outputs["data_dir"],
                                    plan_task.outputs["model_dir"],
                                ),
                            },
                        }
                    ],
                    timeout=training_timeout,
                    service_account=SERVICE_ACCOUNT_PLACEHOLDER,
                    encryption_spec_key_name=KMS_KEY_PLACEHOLDER,
                    labels=labels,
                ).set_display_name("train on Cloud TPU")
                train_task.after(plan_task)
            else:
                train_task = train(
                    experiment_config=experiment_config,
                    config_overrides=config_overrides,
                    dataset=dataset,
                ).set_display_name("train (CPU)")
                model_artifact = train_task.outputs["model"]
            if vertex:
                TRAIN_RETRY.apply(train_task)
            train_task.set_caching_options(True)

            eval_task = evaluate(
                split=eval_split, model=model_artifact, dataset=dataset
            ).set_display_name("evaluate")
            eval_task.after(train_task)
            eval_task.set_caching_options(True)

            register_task = register(
                registry=registry,
                default_registry=default_registry,
                model_display_name=model_display_name,
                promotion_metric=promotion_metric,
                min_gain=min_gain,
                labels=labels,
                run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                experiment_config=experiment_config,
                data_location=data_location,
                model=model_artifact,
                evaluation=eval_task.outputs["evaluation"],
            ).set_display_name("register model version")
            (REGISTER_RETRY if vertex else LOCAL_REGISTER_RETRY).apply(register_task)
            # Registration changes the registry: it must run every time (it is idempotent per
            # run id, so a retried or re-run registration never creates a second version).
            register_task.set_caching_options(False)

            if vertex:
                prep_task.set_cpu_request("1").set_memory_request("4G")
                plan_task.set_cpu_request("1").set_memory_request("1G")
                eval_task.set_cpu_request("8").set_memory_request("32G")
                register_task.set_cpu_request("2").set_memory_request("8G")
                status_task.set_cpu_request("1").set_memory_request("1G")

    pipeline.__name__ = "assemblenet_training"
    return dsl.pipeline(
        name=PIPELINE_NAME,
        description="AssembleNet video classification: Beam preprocessing, TPU training, "
        "evaluation and gated Model Registry registration.",
    )(_resolved(pipeline))
