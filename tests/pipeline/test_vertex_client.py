"""Submit, schedule and template upload with the real SDKs against local stand-ins.

The aiplatform client talks REST to the fake Vertex AI server (tests/fakes) and the kfp
RegistryClient to a fake template registry; nothing reaches the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model.errors import RegistryError
from pipeline.cli import main
from pipeline.compile import DEFAULT_OUTPUT
from pipeline.schedule import cron_with_time_zone
from pipeline.settings import Settings
from pipeline.submit import submit_pipeline
from pipeline.templates import resolve_tag, resolve_template_uri, upload_template
from tests.pipeline.fake_template_registry import FakeTemplateRegistry

SA = "runner@test-project.iam.gserviceaccount.com"
NETWORK = "projects/123/global/networks/vpc"
KMS = "projects/test-project/locations/us-central1/keyRings/r/cryptoKeys/k"


@pytest.fixture
def settings(vertex_env: Any) -> Settings:
    return Settings(
        project=vertex_env.project,
        region=vertex_env.region,
        pipeline_root=f"{vertex_env.staging_bucket}/root",
        staging_bucket=vertex_env.staging_bucket,
        service_account=SA,
        network=NETWORK,
        kms_key=KMS,
        api_endpoint=vertex_env.api_endpoint,
        api_transport="rest",
        labels={"env": "test"},
        schedule_time_zone="Europe/Paris",
    )


@pytest.fixture
def template_registry() -> Iterator[FakeTemplateRegistry]:
    registry = FakeTemplateRegistry().start()
    yield registry
    registry.stop()


def _env_file(tmp_path: Path, settings: Settings) -> Path:
    import yaml

    values = {
        "project": settings.project,
        "region": settings.region,
        "pipeline_root": settings.pipeline_root,
        "staging_bucket": settings.staging_bucket,
        "service_account": settings.service_account,
        "network": settings.network,
        "kms_key": settings.kms_key,
        "api_endpoint": settings.api_endpoint,
        "api_transport": "rest",
        "labels": dict(settings.labels),
        "schedule_time_zone": settings.schedule_time_zone,
    }
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _tasks_caching(pipeline_spec: dict[str, Any]) -> dict[str, bool]:
    inner = pipeline_spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    return {name: bool(task["cachingOptions"].get("enableCache")) for name, task in inner.items()}


def test_submit_sends_identity_network_cmek_labels_and_root(
    settings: Settings, vertex_env: Any
) -> None:
    result = submit_pipeline(
        settings,
        str(DEFAULT_OUTPUT),
        {"data_location": "gs://test-bucket/ucf101", "min_gain": 0.01},
        job_id="run-1",
        wait=True,
    )
    assert result["name"].endswith("/pipelineJobs/run-1")
    assert result["state"] == "PIPELINE_STATE_SUCCEEDED"
    (body,) = vertex_env.fake.requests_to("POST", "/pipelineJobs")
    assert body["serviceAccount"] == SA
    assert body["network"] == NETWORK
    assert body["encryptionSpec"] == {"kmsKeyName": KMS}
    assert body["labels"]["env"] == "test"
    assert body["labels"]["app"] == "assemblenet"
    assert body["labels"]["code-version"]
    runtime = body["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == "gs://test-bucket/root"
    assert runtime["parameterValues"]["data_location"] == "gs://test-bucket/ucf101"
    assert runtime["parameterValues"]["min_gain"] == 0.01
    # enable_caching=None keeps the per-task settings compiled into pipeline.yaml.
    assert _tasks_caching(body["pipelineSpec"]) == {
        "preprocess-op": True,
        "plan-training-op": False,
        "custom-training-job": True,
        "evaluate-op": True,
        "register-op": False,
    }


def test_submit_caching_off_overrides_every_task(settings: Settings, vertex_env: Any) -> None:
    submit_pipeline(
        settings, str(DEFAULT_OUTPUT), {"data_location": "gs://b/d"}, enable_caching=False
    )
    (body,) = vertex_env.fake.requests_to("POST", "/pipelineJobs")
    assert not any(_tasks_caching(body["pipelineSpec"]).values())


def test_submit_from_gcs_template(settings: Settings, vertex_env: Any) -> None:
    from google.cloud import storage

    client = storage.Client(project=vertex_env.project)
    blob = client.bucket("test-bucket").blob("templates/pipeline.yaml")
    blob.upload_from_filename(str(DEFAULT_OUTPUT))
    result = submit_pipeline(
        settings, "gs://test-bucket/templates/pipeline.yaml", {"data_location": "gs://b/d"}
    )
    assert "/pipelineJobs/" in result["name"]
    (body,) = vertex_env.fake.requests_to("POST", "/pipelineJobs")
    assert body["pipelineSpec"]["pipelineInfo"]["name"] == "assemblenet-training"


def test_cli_submit_json(tmp_path: Path, settings: Settings, vertex_env: Any, capsys) -> None:
    import json

    env = _env_file(tmp_path, settings)
    status = main(
        [
            "pipeline",
            "submit",
            "--env",
            str(env),
            "--data-location",
            "gs://test-bucket/ucf101",
            "--param",
            "split=2",
            "--label",
            "owner=ml",
            "--json",
        ]
    )
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"].startswith("projects/test-project/locations/us-central1/pipelineJobs/")
    (body,) = vertex_env.fake.requests_to("POST", "/pipelineJobs")
    values = body["runtimeConfig"]["parameterValues"]
    assert values["split"] == 2
    # Environment defaults reach the pipeline parameters.
    assert values["dataflow_temp_location"] == "gs://test-bucket/dataflow"
    assert values["model_display_name"] == "assemblenet"
    assert body["labels"]["owner"] == "ml"
    assert "env" not in body["labels"]


def test_cron_time_zone() -> None:
    assert cron_with_time_zone("0 3 * * 1", "Europe/Paris") == "TZ=Europe/Paris 0 3 * * 1"
    assert cron_with_time_zone("TZ=UTC  0 3 * * 1", "Europe/Paris") == "TZ=UTC 0 3 * * 1"
    from model.errors import ConfigError

    with pytest.raises(ConfigError, match="5 fields"):
        cron_with_time_zone("0 3 * *", "UTC")
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Base'"):
        cron_with_time_zone("0 3 * * 1", "Mars/Base")


def test_schedule_create_list_pause_resume_delete(
    tmp_path: Path, settings: Settings, vertex_env: Any, capsys
) -> None:
    import json

    env = _env_file(tmp_path, settings)
    common = ["--env", str(env), "--json"]
    status = main(
        [
            "pipeline",
            "schedule",
            "create",
            "--cron",
            "0 3 * * 1",
            "--display-name",
            "weekly-retrain",
            "--data-location",
            "gs://test-bucket/ucf101",
            *common,
        ]
    )
    assert status == 0
    created = json.loads(capsys.readouterr().out)
    assert created["cron"] == "TZ=Europe/Paris 0 3 * * 1"
    assert created["state"] == "ACTIVE"
    (body,) = vertex_env.fake.requests_to("POST", "/schedules")
    assert body["cron"] == "TZ=Europe/Paris 0 3 * * 1"
    assert body["maxConcurrentRunCount"] in (1, "1")
    request = body["createPipelineJobRequest"]
    assert request["pipelineJob"]["serviceAccount"] == SA
    assert request["pipelineJob"]["network"] == NETWORK
    assert request["pipelineJob"]["encryptionSpec"] == {"kmsKeyName": KMS}
    assert request["pipelineJob"]["runtimeConfig"]["parameterValues"]["data_location"] == (
        "gs://test-bucket/ucf101"
    )
    schedule_id = created["name"].rsplit("/", 1)[-1]

    assert main(["pipeline", "schedule", "list", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in listed] == [created["name"]]

    assert main(["pipeline", "schedule", "pause", schedule_id, *common]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "PAUSED"
    assert vertex_env.fake.schedules[schedule_id]["state"] == "PAUSED"

    assert main(["pipeline", "schedule", "resume", schedule_id, *common]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "ACTIVE"

    assert main(["pipeline", "schedule", "delete", created["name"], *common]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "DELETED"
    assert vertex_env.fake.schedules == {}


def test_unknown_schedule_exits_2(tmp_path: Path, settings: Settings, vertex_env: Any, capsys):
    env = _env_file(tmp_path, settings)
    assert main(["pipeline", "schedule", "pause", "424242", "--env", str(env)]) == 2
    err = capsys.readouterr().err
    assert "schedule 424242 not found" in err
    assert "Traceback" not in err


def test_upload_template_returns_digest_and_tags(
    settings: Settings, template_registry: FakeTemplateRegistry
) -> None:
    import hashlib

    result = upload_template(
        settings, DEFAULT_OUTPUT, tags=["v0-1-0", "latest"], host=template_registry.host
    )
    digest = "sha256:" + hashlib.sha256(DEFAULT_OUTPUT.read_bytes()).hexdigest()
    assert result["package"] == "assemblenet-training"
    assert result["version"] == digest
    assert result["uri"] == f"{template_registry.host}/assemblenet-training/{digest}"
    assert template_registry.uploads == [
        {"package": "assemblenet-training", "digest": digest, "tags": ["v0-1-0", "latest"]}
    ]
    assert resolve_tag(template_registry.host, "assemblenet-training", "latest") == digest
    with pytest.raises(RegistryError, match="assemblenet-training:nope not found"):
        resolve_tag(template_registry.host, "assemblenet-training", "nope")


def test_cli_upload_template(
    tmp_path: Path, template_registry: FakeTemplateRegistry, capsys
) -> None:
    import json

    env = tmp_path / "env.yaml"
    env.write_text(f"template_registry: {template_registry.host}\n")
    status = main(["pipeline", "upload-template", "--env", str(env), "--tag", "v1", "--json"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"].startswith("sha256:")
    assert template_registry.tags["assemblenet-training"]["v1"] == out["version"]


def test_ar_template_tag_is_resolved_to_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Artifact Registry URI with a tag is rewritten to the digest the tag points at."""
    import google.auth
    import responses
    from google.oauth2.credentials import Credentials

    # Artifact Registry hosts use Application Default Credentials; offline there are none.
    token = Credentials(token="test-token")
    monkeypatch.setattr(google.auth, "default", lambda **_: (token, "p"))
    digest = "sha256:" + "ab" * 32
    tag_url = (
        "https://artifactregistry.googleapis.com/v1/projects/p/locations/us-central1/"
        "repositories/pipes/packages/assemblenet-training/tags/v1"
    )
    with responses.RequestsMock() as mock:
        mock.get(tag_url, json={"name": "t", "version": f".../versions/{digest}"})
        uri = resolve_template_uri(
            "https://us-central1-kfp.pkg.dev/p/pipes/assemblenet-training/v1"
        )
        assert mock.calls[0].request.headers["Authorization"] == "Bearer test-token"
    assert uri == f"https://us-central1-kfp.pkg.dev/p/pipes/assemblenet-training/{digest}"
    # Digest references are left alone (no request is made).
    assert resolve_template_uri(uri) == uri
