"""The compiled pipeline: freshness of pipeline.yaml and its structure (TPU, retries, caching)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from model.errors import ConfigError
from pipeline.compile import DEFAULT_OUTPUT, compile_pipeline, default_images
from pipeline.dag import TrainerResources
from pipeline.images import ImageSet

GCPC_IMAGE = "gcr.io/ml-pipeline/google-cloud-pipeline-components:2.22.0"


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_OUTPUT.read_text(encoding="utf-8"))


def _tasks(spec: dict[str, Any]) -> dict[str, Any]:
    """All tasks of the DAG, the exit handler's inner DAG included, by task name."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    del tasks["exit-handler-1"]  # the group, not a task
    inner = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    tasks.update(inner)
    return tasks


def _worker_pool(spec: dict[str, Any]) -> dict[str, Any]:
    task = _tasks(spec)["custom-training-job"]
    (pool,) = task["inputs"]["parameters"]["worker_pool_specs"]["runtimeValue"]["constant"]
    return pool


def test_committed_pipeline_yaml_is_fresh(tmp_path: Path) -> None:
    fresh = compile_pipeline("vertex", tmp_path / "pipeline.yaml")
    assert fresh.read_bytes() == DEFAULT_OUTPUT.read_bytes(), (
        "pipeline.yaml is stale: run `make compile` (assemblenet pipeline compile)"
    )


def test_compile_is_deterministic(tmp_path: Path) -> None:
    first = compile_pipeline("local", tmp_path / "a.yaml").read_bytes()
    second = compile_pipeline("local", tmp_path / "b.yaml").read_bytes()
    assert first == second


def test_tpu_worker_pool(committed: dict[str, Any]) -> None:
    pool = _worker_pool(committed)
    assert pool["machine_spec"] == {
        "machine_type": "cloud-tpu",
        "accelerator_type": "TPU_V3",
        "accelerator_count": 8,
    }
    assert pool["replica_count"] == 1
    container = pool["container_spec"]
    assert container["image_uri"] == default_images().trainer
    assert container["command"] == ["assemblenet"]
    args = container["args"]
    assert args[0] == "train"
    flags = dict(zip(args[1::2], args[2::2], strict=True))
    # The job reads the config the plan step validated and resolved (overrides applied).
    assert flags["--config"] == (
        "{{$.inputs.parameters['pipelinechannel--plan-training-op-config_path']}}"
    )
    assert flags["--data"] == "{{$.inputs.parameters['pipelinechannel--preprocess-op-data_dir']}}"
    assert flags["--model-dir"] == (
        "{{$.inputs.parameters['pipelinechannel--plan-training-op-model_dir']}}"
    )
    params = _tasks(committed)["custom-training-job"]["inputs"]["parameters"]
    # The job inherits the run's identity and CMEK key through Vertex placeholders.
    assert params["service_account"]["runtimeValue"]["constant"] == "{{$.pipeline_service_account}}"
    assert (
        params["encryption_spec_key_name"]["runtimeValue"]["constant"]
        == "{{$.pipeline_encryption_key_name}}"
    )


def test_v5e_topology_compiles_into_machine_spec(tmp_path: Path) -> None:
    trainer = TrainerResources(
        machine_type="ct5lp-hightpu-4t",
        accelerator_type="TPU_V5_LITEPOD",
        accelerator_count=4,
        tpu_topology="2x2",
    )
    path = compile_pipeline("vertex", tmp_path / "v5e.yaml", trainer=trainer)
    spec = _worker_pool(yaml.safe_load(path.read_text()))["machine_spec"]
    assert spec == {
        "machine_type": "ct5lp-hightpu-4t",
        "accelerator_type": "TPU_V5_LITEPOD",
        "accelerator_count": 4,
        "tpu_topology": "2x2",
    }


def test_v5e_machine_without_topology_is_rejected() -> None:
    with pytest.raises(ConfigError, match="tpu_topology"):
        TrainerResources(machine_type="ct5lp-hightpu-4t", accelerator_type="TPU_V5_LITEPOD")


def test_retries_with_backoff(committed: dict[str, Any]) -> None:
    tasks = _tasks(committed)
    retries = {name: task.get("retryPolicy") for name, task in tasks.items()}
    assert retries["preprocess-op"]["maxRetryCount"] == 2
    assert retries["custom-training-job"]["maxRetryCount"] == 1
    assert retries["register-op"]["maxRetryCount"] == 3
    for name in ("preprocess-op", "custom-training-job", "register-op"):
        assert retries[name]["backoffFactor"] == 2.0
        assert re.fullmatch(r"\d+s", retries[name]["backoffDuration"])
    assert retries["evaluate-op"] is None


def test_caching_per_task(committed: dict[str, Any]) -> None:
    tasks = _tasks(committed)
    cached = {
        name: task["cachingOptions"].get("enableCache", False) for name, task in tasks.items()
    }
    assert cached == {
        "record-status-op": False,  # exit handler
        "preprocess-op": True,
        "plan-training-op": False,  # fresh model location per run
        "custom-training-job": True,
        "evaluate-op": True,
        "register-op": False,  # side effect on the registry
    }


def test_exit_handler_records_final_status(committed: dict[str, Any]) -> None:
    task = committed["root"]["dag"]["tasks"]["record-status-op"]
    assert task["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert task["inputs"]["parameters"]["status"]["taskFinalStatus"]["producerTask"] == (
        "exit-handler-1"
    )


def test_pipeline_parameters(committed: dict[str, Any]) -> None:
    params = committed["root"]["inputDefinitions"]["parameters"]
    types = {name: p["parameterType"] for name, p in params.items()}
    assert types["data_location"] == "STRING"
    assert not params["data_location"].get("isOptional")
    assert types["split"] == "NUMBER_INTEGER"
    assert types["min_gain"] == "NUMBER_DOUBLE"
    assert types["labels"] == "STRUCT"
    assert types["config_overrides"] == "STRUCT"
    defaults = {name: p.get("defaultValue") for name, p in params.items()}
    assert defaults["source_type"] == "ucf101"
    assert defaults["experiment_config"] == "ucf101_assemblenet50"
    assert defaults["promotion_metric"] == "top_1"
    assert defaults["model_display_name"] == "assemblenet"
    for name, param in params.items():
        assert param.get("description"), f"parameter {name} has no description"


def test_display_names_and_resources(committed: dict[str, Any]) -> None:
    tasks = _tasks(committed)
    assert tasks["custom-training-job"]["taskInfo"]["name"] == "train on Cloud TPU"
    assert tasks["preprocess-op"]["taskInfo"]["name"] == "preprocess videos (Beam)"
    executors = committed["deploymentSpec"]["executors"]
    resources = executors["exec-evaluate-op"]["container"]["resources"]
    assert resources["resourceCpuRequest"] == "8"
    assert resources["resourceMemoryRequest"] == "32G"


def test_dataflow_uses_our_sdk_container(committed: dict[str, Any]) -> None:
    params = _tasks(committed)["preprocess-op"]["inputs"]["parameters"]
    assert params["runner"]["runtimeValue"]["constant"] == "DataflowRunner"
    options = params["beam_options"]["runtimeValue"]["constant"]
    assert options["sdk_container_image"] == default_images().beam
    assert options["project"] == "{{$.pipeline_google_cloud_project_id}}"


def test_image_references_are_immutable_and_from_the_image_set(
    committed: dict[str, Any],
) -> None:
    images = default_images()
    expected = {
        "exec-preprocess-op": images.beam,
        "exec-evaluate-op": images.trainer,
        "exec-plan-training-op": images.pipeline,
        "exec-register-op": images.pipeline,
        "exec-record-status-op": images.pipeline,
        "exec-custom-training-job": GCPC_IMAGE,
    }
    executors = committed["deploymentSpec"]["executors"]
    assert {name: ex["container"]["image"] for name, ex in executors.items()} == expected
    # Every image string anywhere in the spec carries an explicit, non-latest tag.
    text = DEFAULT_OUTPUT.read_text(encoding="utf-8")
    for ref in re.findall(r"[\w.-]+\.(?:dev|io)/[\w./-]+:[\w.-]+", text):
        assert not ref.endswith(":latest"), ref
    # No run-time package installation: components import the project from the image.
    assert "pip install" not in text


def test_local_target_has_no_cloud_steps(tmp_path: Path) -> None:
    images = ImageSet.for_registry("registry.example/proj", "abc123")
    path = compile_pipeline("local", tmp_path / "local.yaml", images=images)
    spec = yaml.safe_load(path.read_text())
    tasks = _tasks(spec)
    assert "train-op" in tasks
    assert "custom-training-job" not in tasks
    assert tasks["preprocess-op"]["inputs"]["parameters"]["runner"]["runtimeValue"]["constant"] == (
        "DirectRunner"
    )
    executors = spec["deploymentSpec"]["executors"]
    assert executors["exec-train-op"]["container"]["image"] == images.trainer


def test_unknown_target_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown pipeline target 'kubernetes'"):
        compile_pipeline("kubernetes", tmp_path / "x.yaml")


def test_cli_compile_writes_target(tmp_path: Path) -> None:
    from pipeline.cli import main

    out = tmp_path / "v6e.yaml"
    status = main(
        [
            "pipeline",
            "compile",
            "--output",
            str(out),
            "--image-tag",
            "deadbeef",
            "--machine-type",
            "ct6e-standard-4t",
            "--accelerator-type",
            "TPU_V6E",
            "--accelerator-count",
            "4",
            "--tpu-topology",
            "2x2",
        ]
    )
    assert status == 0
    spec = yaml.safe_load(out.read_text())
    pool = _worker_pool(spec)
    assert pool["machine_spec"]["tpu_topology"] == "2x2"
    assert pool["container_spec"]["image_uri"].endswith("/assemblenet-trainer:deadbeef")
