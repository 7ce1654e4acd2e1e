"""`assemblenet registry list|show|promote|rollback` on the embedded and the Vertex registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.register import register_model
from pipeline.cli import main
from tests.fakes.fixtures import VertexTestEnv
from tests.registry.helpers import MODEL, make_model_dir, write_metrics


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _registry_args(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    if request.param == "local":
        return ["--registry", str(tmp_path / "registry")]
    env: VertexTestEnv = request.getfixturevalue("vertex_env")
    return [
        "--project", env.project, "--region", env.region,
        "--api-endpoint", env.api_endpoint, "--staging-bucket", env.staging_bucket,
    ]  # fmt: skip


@pytest.fixture(params=["local", "vertex"])
def registry_args(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    return _registry_args(request, tmp_path)


def test_list_show_promote_rollback(
    registry_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from components.registry import RegistrySettings, open_registry

    if registry_args[0] == "--registry":
        reg = open_registry(registry_args[1])
    else:
        values = dict(zip(registry_args[::2], registry_args[1::2], strict=True))
        reg = open_registry(
            RegistrySettings(
                project=values["--project"],
                region=values["--region"],
                api_endpoint=values["--api-endpoint"],
                staging_bucket=values["--staging-bucket"],
            )
        )
    for run, top_1 in (("run-1", 0.5), ("run-2", 0.4)):
        register_model(
            make_model_dir(tmp_path, run),
            write_metrics(tmp_path / f"{run}.json", top_1),
            registry=reg,
            model_name=MODEL,
            run_id=run,
        )
    status, out, _ = _run(capsys, "registry", "list", MODEL, "--json", *registry_args)
    assert status == 0
    versions = {v["version_id"]: v for v in json.loads(out)["versions"]}
    assert set(versions["1"]["aliases"]) == {"default", "champion"}
    assert versions["2"]["aliases"] == ["challenger"]
    assert versions["2"]["metrics"]["top_1"] == pytest.approx(0.4)

    status, out, _ = _run(capsys, "registry", "list", MODEL, *registry_args)
    assert status == 0
    assert "run-2" in out
    assert "0.4000" in out

    status, out, _ = _run(capsys, "registry", "show", f"{MODEL}@challenger", *registry_args)
    assert status == 0
    assert f"{MODEL}@2" in out
    assert "metric top_1=0.4000" in out

    status, out, _ = _run(capsys, "registry", "promote", f"{MODEL}@2", "--json", *registry_args)
    assert status == 0
    assert "champion" in json.loads(out)["aliases"]
    status, out, _ = _run(capsys, "registry", "show", f"{MODEL}@default", "--json", *registry_args)
    assert json.loads(out)["version_id"] == "2"

    status, out, _ = _run(capsys, "registry", "rollback", MODEL, *registry_args)
    assert status == 0
    assert "rolled back to version 1" in out
    status, out, _ = _run(capsys, "registry", "show", f"{MODEL}@champion", "--json", *registry_args)
    assert json.loads(out)["version_id"] == "1"

    status, _, err = _run(capsys, "registry", "rollback", MODEL, *registry_args)
    assert status == 2
    assert "no earlier champion" in err

    status, _, err = _run(capsys, "registry", "show", f"{MODEL}@gone", *registry_args)
    assert status == 2
    assert "gone" in err
    assert "Traceback" not in err

    status, _, err = _run(capsys, "registry", "promote", f"{MODEL}@99", *registry_args)
    assert status == 2


def test_list_models_and_help(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "registry"
    register_model(
        make_model_dir(tmp_path, "m"),
        write_metrics(tmp_path / "m.json", 0.5),
        registry=registry,
        model_name=MODEL,
        run_id="r",
    )
    status, out, _ = _run(capsys, "registry", "list", "--json", "--registry", str(registry))
    assert status == 0
    assert json.loads(out) == {"models": [MODEL]}
    status, out, _ = _run(capsys, "registry", "show", MODEL, "--json", "--registry", str(registry))
    assert status == 0
    labels = json.loads(out)["labels"]
    assert labels["code-version"]  # defaults to the installed project version
    assert labels["pipeline-run"] == "r"
    status, _, err = _run(
        capsys, "predict", "--batch", "--model", f"{MODEL}@champion", "--input-list",
        "gs://b/l.txt", "--output", "gs://b/out", "--registry", str(registry),
    )  # fmt: skip
    assert status == 2
    assert "Vertex AI" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["registry", "--help"])
    assert exit_info.value.code == 0
