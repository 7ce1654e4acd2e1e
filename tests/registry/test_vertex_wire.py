"""What the Vertex AI backend sends, and the fake's registry rules it relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform

from components.register import register_model
from components.registry import RegistrySettings, open_registry
from components.registry.vertex import CLASSIFICATION_METRICS_SCHEMA
from tests.fakes.fixtures import VertexTestEnv
from tests.registry.helpers import MODEL, make_model_dir, write_metrics


def test_upload_parent_model_labels_and_evaluation_on_exact_version(
    vertex_env: VertexTestEnv, tmp_path: Path
) -> None:
    from google.cloud import storage

    reg = open_registry(
        RegistrySettings(
            project=vertex_env.project,
            region=vertex_env.region,
            api_endpoint=vertex_env.api_endpoint,
            staging_bucket=vertex_env.staging_bucket,
        )
    )
    for run, top_1 in (("run-1", 0.6), ("run-2", 0.5)):
        register_model(
            make_model_dir(tmp_path, run),
            write_metrics(tmp_path / f"{run}.json", top_1),
            registry=reg,
            model_name=MODEL,
            run_id=run,
            labels={"dataset": "ucf101", "code_version": "1.2.3"},
        )
    fake = vertex_env.fake
    first, second = fake.requests_to("POST", "models:upload")
    assert first["modelId"] == MODEL
    assert "parentModel" not in first
    assert first["model"]["versionAliases"] == ["default"]
    assert second["parentModel"].endswith(f"/models/{MODEL}")
    assert second["model"].get("versionAliases", []) == []  # aliases come after the gate
    assert second["model"]["labels"] == {
        "dataset": "ucf101",
        "code_version": "1-2-3",
        "pipeline-run": "run-2",
        "registration": "pending",
    }
    # Evaluations were imported onto the exact versions, with the classification schema.
    import_paths = [p for m, p, _ in fake.requests if "evaluations:import" in p]
    assert import_paths[0].endswith(f"/models/{MODEL}@1/evaluations:import")
    assert import_paths[1].endswith(f"/models/{MODEL}@2/evaluations:import")
    evaluation = fake.requests_to("POST", f"{MODEL}@2/evaluations:import")[0]["modelEvaluation"]
    assert evaluation["metricsSchemaUri"] == CLASSIFICATION_METRICS_SCHEMA
    assert evaluation["metrics"]["confusionMatrix"]["rows"] == [[3.0, 1.0], [1.0, 3.0]]
    assert evaluation["metadata"]["metrics"]["top_1"] == pytest.approx(0.5)
    # The SavedModel and its side files were staged into the (emulated) bucket.
    artifact = first["model"]["artifactUri"].removeprefix("gs://").split("/", 1)[1]
    names = {
        b.name[len(artifact) + 1 :]
        for b in storage.Client(project=vertex_env.project).list_blobs(
            vertex_env.staging_bucket[5:], prefix=artifact
        )
    }
    assert {"saved_model.pb", "assets.extra/label_map.txt", "assets.extra/experiment.yaml"} <= names
    assert not any(n.startswith("checkpoints") for n in names)
    # Version 2 lost the gate: only challenger moved; the SDK sees the same thing.
    assert fake.aliases(MODEL) == {"default": "1", "champion": "1", "challenger": "2"}
    champion = aiplatform.Model(
        f"projects/{vertex_env.project}/locations/us-central1/models/{MODEL}@champion"
    )
    assert champion.version_id == "1"
    assert reg.get_version(MODEL, "2").labels["promotion"] == "kept"


def test_fake_enforces_registry_rules(vertex_env: VertexTestEnv, tmp_path: Path) -> None:
    """The rules production code relies on hold in the fake (so tests mean something)."""
    reg = open_registry(
        RegistrySettings(
            project=vertex_env.project,
            region=vertex_env.region,
            api_endpoint=vertex_env.api_endpoint,
            staging_bucket=vertex_env.staging_bucket,
        )
    )
    for run in ("a", "b"):
        reg.upload_version(MODEL, make_model_dir(tmp_path, run), {"pipeline-run": run})
    assert reg.get_version(MODEL, "default").version_id == "1"  # v1 always gets default
    reg.merge_aliases(MODEL, "1", ["blue"])
    reg.merge_aliases(MODEL, "2", ["blue"])  # an alias names one version: it moves
    assert vertex_env.fake.aliases(MODEL)["blue"] == "2"
    reg.merge_aliases(MODEL, "2", ["-blue"])
    assert "blue" not in vertex_env.fake.aliases(MODEL)
    with pytest.raises(exceptions.BadRequest):
        reg._client.merge_version_aliases(  # numeric aliases are refused
            name=f"{reg.model_path(MODEL)}@2", version_aliases=["42"]
        )
    with pytest.raises(exceptions.BadRequest):
        reg._client.merge_version_aliases(  # default can only move
            name=f"{reg.model_path(MODEL)}@1", version_aliases=["-default"]
        )
    assert reg.find_by_run_id(MODEL, "b").version_id == "2"
    assert reg.find_by_run_id(MODEL, "zzz") is None
