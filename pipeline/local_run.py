"""The project's main job: the whole pipeline on one machine, no cloud, no Docker.

:func:`run_local` generates the synthetic motion dataset (:mod:`components.synth`) under a work
directory, runs the ``local`` compile target of :func:`pipeline.dag.build_pipeline` with
``kfp.local.SubprocessRunner(use_venv=False)`` (Beam DirectRunner, CPU training), and keeps every
output under the work directory::

    WORKDIR/raw/             synthetic videos in the UCF101 layout (generated once, then reused)
    WORKDIR/pipeline_root/   kfp.local run directories: <pipeline>-<timestamp>/<task>/<output>
    WORKDIR/registry/        the embedded model registry (versions, aliases, evaluations)

A second run registers a new version; the promotion gate makes it ``champion`` only if it beats
the current champion on the promotion metric by ``min_gain``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model.errors import ConfigError, UserError

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "assemblenet-synthetic"


class PipelineRunError(UserError):
    """A local pipeline run failed; the message names the failed task and its logs."""


@dataclasses.dataclass(frozen=True, slots=True)
class SynthOptions:
    """Size of the generated synthetic dataset (see :func:`components.synth.generate_dataset`).

    ``num_classes``/``num_frames`` default to the experiment config's, so data and model agree.
    """

    num_classes: int | None = None
    clips_per_class: int = 100  # 640 train / 160 test clips, as benchmarks/train_synthetic.py
    num_frames: int | None = None
    size: int = 64
    seed: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class LocalRunResult:
    """Where a local run left its outputs.

    Attributes:
        run_dir: kfp.local directory of this run (one sub-directory per task).
        state: final state recorded by the exit handler (``SUCCEEDED`` or ``FAILED``).
        model_dir: trained model directory (model.keras, saved_model/, ...).
        metrics_path: evaluation metrics.json.
        registry: embedded registry directory (or registry URI).
        registration: what registration did (version, aliases, champion, ...).
        top_1: test top-1 accuracy of this run's model.
        duration_s: wall time of the pipeline run.
    """

    run_dir: Path
    state: str
    model_dir: Path
    metrics_path: Path
    registry: str
    registration: dict[str, Any]
    top_1: float
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            field.name: str(value) if isinstance(value, Path) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }


def _experiment(config: str, overrides: Mapping[str, object] | None) -> Any:
    from model.config import load_config

    return load_config(config, overrides)


def prepare_synthetic_data(raw_dir: Path, options: SynthOptions, cfg: Any) -> Path:
    """Generates the synthetic dataset into ``raw_dir`` unless a complete one is there."""
    from components.synth import generate_dataset

    if (raw_dir / "ucfTrainTestlist" / "classInd.txt").is_file():
        logger.info("reusing synthetic dataset in %s", raw_dir)
        return raw_dir
    num_classes = options.num_classes or cfg.data.num_classes
    # Clips at least as long as one training window (the synthetic default is 16 frames).
    num_frames = options.num_frames or max(16, cfg.data.num_frames * cfg.data.temporal_stride)
    logger.info(
        "generating synthetic dataset: %d classes x %d clips, %d frames of %dpx -> %s",
        num_classes,
        options.clips_per_class,
        num_frames,
        options.size,
        raw_dir,
    )
    return generate_dataset(
        raw_dir,
        num_classes=num_classes,
        clips_per_class=options.clips_per_class,
        num_frames=num_frames,
        size=options.size,
        seed=options.seed,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _failed_task(run_dir: Path) -> str:
    """Names the task(s) that wrote no executor output (failed or never ran)."""
    expected = ("preprocess-op", "train-op", "evaluate-op", "register-op")
    missing = [task for task in expected if not (run_dir / task / "executor_output.json").is_file()]
    return missing[0] if missing else "unknown"


class ExecutorInputFilter(io.TextIOBase):
    """A text stream that drops the executor-input JSON kfp's executor logs for every task.

    Each task's log otherwise opens with a dump of its input and output locations, about 100
    lines of JSON per task. The line announcing it is kept, with a note; every other line
    passes through unchanged (and so does everything if the format ever differs).
    """

    MARKER = "Got executor_input:"

    def __init__(self, target: Any) -> None:
        super().__init__()
        self._target = target
        self._partial = ""
        self._state = "pass"  # pass -> opening (after the marker) -> body (inside the JSON)
        self._closing = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        if self._partial and self._state == "pass":
            self._target.write(self._partial)
            self._partial = ""
        self._target.flush()

    def _line(self, line: str) -> None:
        if self._state == "opening" and line.strip() == "{":
            # json.dumps(indent=...) closes the object with "}" at the opening brace's column.
            self._closing = line[: line.index("{")] + "}"
            self._state = "body"
            return
        if self._state == "body":
            if line == self._closing:
                self._state = "pass"
            return
        self._state = "pass"
        if self.MARKER in line:
            self._state = "opening"
            line += " (omitted; --verbose shows it)"
        self._target.write(line + "\n")


def run_local(
    workdir: str | Path,
    *,
    experiment_config: str = "synthetic",
    config_overrides: Mapping[str, object] | None = None,
    data_location: str | None = None,
    synth: SynthOptions | None = None,
    registry: str | None = None,
    model_display_name: str = DEFAULT_MODEL_NAME,
    promotion_metric: str = "top_1",
    min_gain: float = 0.0,
    labels: Mapping[str, str] | None = None,
    beam_options: Mapping[str, object] | None = None,
    enable_caching: bool = False,
) -> LocalRunResult:
    """Runs the whole pipeline locally with kfp.local and returns where its outputs are.

    Args:
        workdir: directory for data, pipeline artifacts and the embedded registry (created).
        experiment_config: experiment YAML path or shipped config name.
        config_overrides: dotted overrides of the experiment config (e.g. ``train.steps``).
        data_location: existing UCF101-layout video directory; default: synthetic data under
            ``workdir/raw`` (generated on first use).
        synth: size of the generated synthetic dataset.
        registry: registry URI (``vertex://projects/P/locations/L`` or a directory); default:
            the embedded registry in ``workdir/registry``.
        model_display_name: registry model that receives the new version.
        promotion_metric: metric the promotion gate compares.
        min_gain: minimum improvement over the champion to take the ``champion`` alias.
        labels: labels on the registered version.
        beam_options: DirectRunner options (``PreprocessOptions`` fields), e.g.
            ``{"direct_running_mode": "in_memory"}`` for tiny datasets.
        enable_caching: reuse the outputs of earlier runs' preprocess, train and evaluate tasks
            when their inputs are unchanged (cache under ``workdir/pipeline_root/.kfp_cache``);
            registration always runs.

    Returns:
        The run's outputs (model, metrics, registration, top-1).

    Raises:
        ConfigError: bad experiment config or overrides (before anything runs).
        PipelineRunError: a task failed; the message names it and where its logs are.
    """
    from kfp import local

    from pipeline.compile import default_images
    from pipeline.dag import build_pipeline

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if data_location is not None and not Path(data_location).exists():
        raise ConfigError(f"data location {data_location} does not exist")
    overrides = dict(config_overrides or {})
    cfg = _experiment(experiment_config, overrides)  # fail fast on a bad config
    if data_location is None:
        data_location = str(prepare_synthetic_data(workdir / "raw", synth or SynthOptions(), cfg))
    registry_uri = registry or str(workdir / "registry")
    pipeline_root = workdir / "pipeline_root"
    pipeline_root.mkdir(exist_ok=True)

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=False,
        enable_caching=enable_caching,
    )
    pipeline = build_pipeline("local", default_images(), local_registry=registry_uri)
    before = {path.name for path in pipeline_root.iterdir()}
    started = time.monotonic()
    logger.info("running the local pipeline (artifacts under %s)", pipeline_root)
    # kfp.local logs (and streams task output) to stdout; keep stdout for the run's result.
    task_log = sys.stderr if logger.isEnabledFor(logging.DEBUG) else ExecutorInputFilter(sys.stderr)
    with contextlib.redirect_stdout(task_log), warnings.catch_warnings():
        # Running our images' code in this interpreter is the point of the local target, and
        # display names / resource requests only matter on Vertex: silence kfp's notes on both.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner")
        pipeline(
            data_location=str(data_location),
            source_type="ucf101",
            experiment_config=experiment_config,
            config_overrides=overrides,
            model_display_name=model_display_name,
            promotion_metric=promotion_metric,
            min_gain=float(min_gain),
            labels=dict(labels or {}),
            registry=registry_uri,
            beam_options=dict(beam_options or {}),
        )
    task_log.flush()
    duration = time.monotonic() - started
    new_runs = sorted(p for p in pipeline_root.iterdir() if p.name not in before and p.is_dir())
    if not new_runs:
        raise PipelineRunError(f"kfp.local produced no run directory under {pipeline_root}")
    run_dir = new_runs[-1]
    status = _read_json(run_dir / "record-status-op" / "run_status")
    state = str(status.get("state", "UNKNOWN"))
    if state != "SUCCEEDED":
        task = _failed_task(run_dir)
        raise PipelineRunError(
            f"local pipeline run {run_dir.name} finished {state}: task {task!r} failed "
            f"(its log is above; outputs under {run_dir})"
        )
    registration = _read_json(run_dir / "register-op" / "registration")
    # Cached tasks' outputs stay in the run that produced them; registration records the paths.
    model_dir = Path(registration.pop("model_dir", run_dir / "train-op" / "model"))
    metrics_path = Path(
        registration.pop("metrics_path", run_dir / "evaluate-op" / "evaluation" / "metrics.json")
    )
    metrics = _read_json(metrics_path)
    return LocalRunResult(
        run_dir=run_dir,
        state=state,
        model_dir=model_dir,
        metrics_path=metrics_path,
        registry=registry_uri,
        registration=registration,
        top_1=float(metrics.get("top_1", float("nan"))),
        duration_s=duration,
    )


def format_result(result: LocalRunResult) -> str:
    """The closing summary printed by ``assemblenet pipeline run --local``."""
    reg = result.registration
    name = reg.get("model_name") or reg.get("model") or DEFAULT_MODEL_NAME
    version = reg.get("version", "?")
    aliases = reg.get("aliases") or []
    champion = reg.get("champion")
    lines = [
        f"pipeline run {result.run_dir.name}: {result.state} in {result.duration_s:.0f}s",
        f"  model:     {result.model_dir}",
        f"  metrics:   {result.metrics_path}",
        f"  report:    {result.metrics_path.parent / 'report.html'}  (confusion matrix)",
        f"  curves:    {result.model_dir / 'training_curves.png'}",
        f"  registry:  {result.registry}  ({name} version {version}, "
        f"aliases: {', '.join(aliases) if aliases else '-'})",
        f"  champion:  {'this version' if champion else 'unchanged (gate not passed)'}",
        f"  test top-1: {result.top_1:.4f}",
        f"  predict:   assemblenet predict --registry {result.registry} --model {name}@champion "
        "VIDEO...",
    ]
    return "\n".join(lines)
