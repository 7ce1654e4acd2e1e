"""Environment settings: shipped examples load, and every kind of mistake is a clear ConfigError."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from model.errors import ConfigError
from pipeline.cli import main
from pipeline.settings import Settings, load_settings

CONFIGS = Path(__file__).resolve().parents[2] / "pipeline" / "configs"


@pytest.mark.parametrize("name", ["dev.yaml", "prod.yaml"])
def test_shipped_environments_load(name: str) -> None:
    settings = load_settings(CONFIGS / name)
    assert settings.project
    assert settings.project.startswith("my-project-")
    assert settings.pipeline_root
    assert settings.pipeline_root.startswith("gs://")
    assert settings.service_account
    assert settings.service_account.endswith(".iam.gserviceaccount.com")
    images = settings.images()
    assert images.trainer.endswith(f"/assemblenet-trainer:{settings.image_tag}")


def test_prod_has_private_network_and_cmek() -> None:
    settings = load_settings(CONFIGS / "prod.yaml")
    assert settings.network
    assert "/global/networks/" in settings.network
    assert settings.kms_key
    assert "/cryptoKeys/" in settings.kms_key


def test_defaults_are_local_and_frozen() -> None:
    settings = load_settings(None)
    assert not settings.has_cloud
    with pytest.raises(ConfigError, match="needs a GCP project"):
        settings.require_cloud("pipeline submit")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.project = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.labels["a"] = "b"  # type: ignore[index]


def test_overrides_win_and_none_means_not_given(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("project: a\nregion: europe-west4\n")
    settings = load_settings(path, {"project": "b", "region": None})
    assert (settings.project, settings.region) == ("b", "europe-west4")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("projetc: p\n", r"unknown key\(s\) 'projetc'"),
        ("region: 5\n", r"key 'region' must be str, got int"),
        ("labels: [a, b]\n", r"key 'labels' must be a mapping"),
        ("labels: {Env: dev}\n", r"label Env='dev' is not a valid"),
        ("pipeline_root: /tmp/root\n", r"pipeline_root must be a gs:// URI"),
        ("api_transport: http\n", r"api_transport must be 'grpc' or 'rest'"),
        ("image_tag: latest\n", r"immutable"),
        ("- a\n- b\n", r"expected a mapping"),
        ("project: [\n", r"not valid YAML"),
    ],
)
def test_bad_environment_is_a_config_error_naming_key_and_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(path)
    assert "broken.yaml" in str(caught.value)


def test_settings_type_check_matches_fields() -> None:
    # Every field is reachable through the loader (a new field with an unsupported type fails).
    values = {field.name: getattr(Settings(), field.name) for field in dataclasses.fields(Settings)}
    values["labels"] = dict(values["labels"])
    assert load_settings(None, values) == Settings()


def test_cli_broken_environment_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("project: p\nserviceaccount: x\n")
    status = main(["pipeline", "submit", "--env", str(path), "--data-location", "gs://b/d"])
    err = capsys.readouterr().err
    assert status == 2
    assert "serviceaccount" in err
    assert str(path) in err
    assert "Traceback" not in err


def test_cli_missing_environment_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["pipeline", "schedule", "list", "--env", "does/not/exist.yaml"])
    assert status == 2
    assert "does/not/exist.yaml does not exist" in capsys.readouterr().err


def test_cli_missing_template_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    status = main(
        [
            "pipeline",
            "submit",
            "--project",
            "p",
            "--pipeline-root",
            "gs://b/root",
            "--template",
            str(missing),
            "--data-location",
            "gs://b/d",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert f"pipeline template {missing} does not exist" in err
    assert "Traceback" not in err


def test_cli_submit_without_project_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "submit", "--data-location", "gs://b/d"]) == 2
    assert "needs a GCP project" in capsys.readouterr().err


def test_cli_upload_template_missing_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "pipeline",
            "upload-template",
            "--template",
            str(tmp_path / "gone.yaml"),
            "--host",
            "http://127.0.0.1:1/repo",
        ]
    )
    assert status == 2
    assert "gone.yaml does not exist" in capsys.readouterr().err
