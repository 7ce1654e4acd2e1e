"""Registration step: a trained model directory becomes a registry version, gated to champion.

``register_model`` is a plain function (the pipeline wraps it in a kfp component). Its order makes
a failure half-way harmless and a re-run of the same pipeline run idempotent:

1. find a version already labelled with this run id; upload a new version only if there is none
   (labels: pipeline run, dataset, config, code version, ``registration=pending``);
2. import the evaluation onto exactly that version (skipped if it is already there);
3. read the current champion's evaluation and apply :func:`should_promote`;
4. **commit**: one atomic alias update puts ``challenger`` (and, if promoted, ``champion`` and
   ``default``) on the version - the only step that changes what anyone serves;
5. bookkeeping labels (``registration=done``, the decision, champion history).

A failure before step 4 leaves every alias as it was; running the same run id again resumes. A
run already marked done returns its recorded result without changing anything.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.registry import (
    CHALLENGER,
    CHAMPION,
    DEFAULT,
    Registry,
    RegistrySettings,
    open_registry,
    should_promote,
)
from components.registry.base import (
    CHAMPION_SINCE_LABEL,
    DECISION_LABEL,
    RUN_ID_LABEL,
    STATUS_LABEL,
    ModelVersion,
    check_model_name,
    clean_labels,
    label_value,
)
from model.errors import DataError, RegistryError

log = logging.getLogger(__name__)

CODE_VERSION_LABEL = "code-version"


def _code_version() -> str:
    """The installed project version (a default for the code-version label)."""
    try:
        return importlib.metadata.version("assemblenet-pipeline")
    except importlib.metadata.PackageNotFoundError:  # a bare checkout
        return "unknown"


def read_metrics(metrics_path: str | Path) -> dict[str, Any]:
    """Load the evaluate step's ``metrics.json``.

    Raises:
        DataError: Missing file or not a JSON object.
    """
    path = Path(metrics_path)
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"metrics file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise DataError(f"metrics file {path} is not valid JSON: {error}") from None
    if not isinstance(metrics, dict):
        raise DataError(f"metrics file {path} must hold a JSON object")
    return metrics


def _metric_of(metrics: Mapping[str, Any] | None, metric: str) -> float | None:
    if metrics is None or metric not in metrics:
        return None
    return float(metrics[metric])


def register_model(
    model_dir: str | Path,
    metrics_path: str | Path,
    *,
    registry: RegistrySettings | Registry | str | Path,
    model_name: str,
    run_id: str,
    labels: Mapping[str, object] | None = None,
    metric: str = "top_1",
    min_gain: float = 0.0,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """Register ``model_dir`` as a new version of ``model_name`` and apply the promotion gate.

    Args:
        model_dir: Training output (``saved_model/``, ``label_map.txt``, ``experiment.yaml``).
        metrics_path: The evaluate step's ``metrics.json``.
        registry: Registry settings, an open registry, or a local registry directory.
        model_name: Registry model name (Vertex AI model id): lowercase, digits, ``-``, ``_``.
        run_id: Pipeline run id; a second call with the same id creates no second version.
        labels: Extra version labels (dataset, config, code version, ...), cleaned to Vertex AI
            label syntax; ``code-version`` defaults to the installed project version.
        metric: Metric compared by the gate (a key of ``metrics.json``).
        min_gain: Improvement over the champion required to promote.
        higher_is_better: Direction of ``metric``.

    Returns:
        ``{"model_name", "version_id", "resource_name", "aliases", "promoted", "metric",
        "challenger_metric", "champion_version_before", "champion_metric_before",
        "champion_version_after", "champion_metric_after", "reused", "registry"}``, plus
        ``"version"`` (= ``version_id``) and ``"champion"`` (the version holds ``champion`` now)
        as the pipeline's register step names its outputs.

    Raises:
        RegistryError: Invalid name/labels/metric, or the registry refuses a request.
        DataError: Unreadable metrics file.
    """
    check_model_name(model_name)
    if not run_id:
        raise RegistryError("run_id must not be empty")
    metrics = read_metrics(metrics_path)
    if metric not in metrics:
        raise RegistryError(
            f"metric {metric!r} is not in {metrics_path} (keys: {', '.join(sorted(metrics))})"
        )
    reg = open_registry(registry)
    started = time.monotonic()

    version = reg.find_by_run_id(model_name, run_id)
    reused = version is not None
    if version is not None and version.labels.get(STATUS_LABEL) == "done":
        log.info("run %s already registered as %s@%s", run_id, model_name, version.version_id)
        return _recorded_result(reg, version, metric)

    if version is None:
        version_labels = {
            CODE_VERSION_LABEL: label_value(_code_version()),
            **clean_labels(labels or {}),
            RUN_ID_LABEL: label_value(run_id),
            STATUS_LABEL: "pending",
        }
        if "code_version" in version_labels:  # the caller's spelling wins
            version_labels.pop(CODE_VERSION_LABEL)
        version = reg.upload_version(
            model_name, Path(model_dir), version_labels, description=f"pipeline run {run_id}"
        )
    else:
        log.info("resuming registration of run %s (version %s)", run_id, version.version_id)

    if reg.get_evaluation(model_name, version.version_id) is None:
        reg.import_evaluation(model_name, version.version_id, metrics, f"{run_id} evaluation")

    champion = reg.champion(model_name)
    if champion is not None and champion.version_id == version.version_id:
        # An earlier attempt of this run already committed; only bookkeeping is left.
        champion_before: ModelVersion | None = None
        champion_metrics = None
        promote = True
    else:
        champion_before = champion
        champion_metrics = (
            reg.get_evaluation(model_name, champion.version_id) if champion is not None else None
        )
        promote = should_promote(metrics, champion_metrics, metric, min_gain, higher_is_better)

    # Commit point: the only call that changes what the aliases point to.
    new_aliases = [CHALLENGER, CHAMPION, DEFAULT] if promote else [CHALLENGER]
    reg.merge_aliases(model_name, version.version_id, new_aliases)

    bookkeeping = {STATUS_LABEL: "done", DECISION_LABEL: "promoted" if promote else "kept"}
    if promote:
        bookkeeping[CHAMPION_SINCE_LABEL] = str(time.time_ns() // 1000)
    version = reg.update_labels(model_name, version.version_id, bookkeeping)

    challenger_metric = float(metrics[metric])
    before = _metric_of(champion_metrics, metric)
    result = {
        "registry": reg.kind,
        "model_name": model_name,
        "version_id": version.version_id,
        "version": version.version_id,
        "resource_name": version.resource_name,
        "aliases": sorted(version.aliases),
        "promoted": promote,
        "champion": CHAMPION in version.aliases,
        "metric": metric,
        "challenger_metric": challenger_metric,
        "champion_version_before": champion_before.version_id if champion_before else None,
        "champion_metric_before": before,
        "champion_version_after": (
            version.version_id
            if promote
            else (champion_before.version_id if champion_before else None)
        ),
        "champion_metric_after": challenger_metric if promote else before,
        "reused": reused,
    }
    log.info(
        "registered %s@%s (%s=%.4f, champion before: %s) -> %s in %.1fs",
        model_name,
        version.version_id,
        metric,
        challenger_metric,
        "none" if before is None else f"{before:.4f}",
        "promoted to champion" if promote else "kept as challenger",
        time.monotonic() - started,
    )
    return result


def _recorded_result(reg: Registry, version: ModelVersion, metric: str) -> dict[str, Any]:
    """The result of a completed registration, rebuilt from the registry without changes."""
    metrics = reg.get_evaluation(version.model_name, version.version_id) or {}
    champion = reg.champion(version.model_name)
    champion_metrics = (
        reg.get_evaluation(version.model_name, champion.version_id) if champion else None
    )
    return {
        "registry": reg.kind,
        "model_name": version.model_name,
        "version_id": version.version_id,
        "version": version.version_id,
        "resource_name": version.resource_name,
        "aliases": sorted(version.aliases),
        "promoted": version.labels.get(DECISION_LABEL) == "promoted",
        "champion": CHAMPION in version.aliases,
        "metric": metric,
        "challenger_metric": _metric_of(metrics, metric),
        "champion_version_before": None,
        "champion_metric_before": None,
        "champion_version_after": champion.version_id if champion else None,
        "champion_metric_after": _metric_of(champion_metrics, metric),
        "reused": True,
    }
