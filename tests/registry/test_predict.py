"""`assemblenet predict` on registered models: a constructed colour classifier, real videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.register import register_model
from components.registry import RegistrySettings
from pipeline.cli import main
from tests.fakes.fixtures import VertexTestEnv
from tests.registry.helpers import write_metrics

NUM_FRAMES = 4
IMAGE_SIZE = 16
CLASSES = ("RedThing", "GreenThing")


@pytest.fixture(scope="module")
def colour_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory like training writes, around a model that tells red from green.

    The model averages the clip's pixels and scores 10 * (R - G) for "RedThing" and the opposite
    for "GreenThing": a two-weight classifier whose right answer is known without training.
    """
    import keras

    from model.export import export_saved_model

    inputs = keras.Input((NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    pooled = keras.layers.GlobalAveragePooling3D()(inputs)  # (B, 3) mean RGB
    dense = keras.layers.Dense(len(CLASSES))
    logits = dense(pooled)
    dense.set_weights(
        [np.array([[10.0, -10.0], [-10.0, 10.0], [0.0, 0.0]], np.float32), np.zeros(2, np.float32)]
    )
    model = keras.Model(inputs, logits)
    model_dir = tmp_path_factory.mktemp("colour") / "model"
    model_dir.mkdir()
    export_saved_model(
        model, model_dir / "saved_model", num_frames=NUM_FRAMES, image_size=IMAGE_SIZE
    )
    (model_dir / "label_map.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    (model_dir / "experiment.yaml").write_text(
        f"data:\n  num_frames: {NUM_FRAMES}\n  image_size: {IMAGE_SIZE}\n  temporal_stride: 1\n"
    )
    return model_dir


def _clip(path: Path, rgb: tuple[int, int, int], frames: int = 12) -> Path:
    from model.data.video_io import write_video

    video = np.zeros((frames, 32, 32, 3), np.uint8)
    video[...] = rgb
    write_video(str(path), video, fps=10.0)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    broken = root / "broken.avi"
    broken.write_bytes(b"RIFF....AVI not really a video" * 10)
    return {
        "red": _clip(root / "red.avi", (230, 20, 20)),
        "green": _clip(root / "green.avi", (20, 230, 20)),
        "broken": broken,
    }


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_predict_local_registry_champion(
    colour_model_dir: Path,
    clips: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = tmp_path / "registry"
    register_model(
        colour_model_dir,
        write_metrics(tmp_path / "metrics.json", 0.9),
        registry=registry,
        model_name="colours",
        run_id="run-1",
    )
    status, out, _ = _run(
        capsys,
        "predict", "--model", "colours@champion", str(clips["red"]), str(clips["green"]),
        "--top-k", "2", "--json", "--registry", str(registry),
    )  # fmt: skip
    assert status == 0
    predictions = json.loads(out)["predictions"]
    assert [p["top_k"][0]["label"] for p in predictions] == ["RedThing", "GreenThing"]
    assert all(p["version_id"] == "1" for p in predictions)
    assert predictions[0]["top_k"][0]["probability"] > 0.9
    assert len(predictions[0]["top_k"]) == 2
    # Human-readable output names the label too.
    status, out, _ = _run(
        capsys, "predict", "--model", "colours@champion", str(clips["green"]),
        "--registry", str(registry),
    )  # fmt: skip
    assert status == 0
    assert "GreenThing" in out.splitlines()[1]


def test_predict_errors_exit_2_without_traceback(
    colour_model_dir: Path,
    clips: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = tmp_path / "registry"
    register_model(
        colour_model_dir,
        write_metrics(tmp_path / "metrics.json", 0.9),
        registry=registry,
        model_name="colours",
        run_id="run-1",
    )
    status, _, err = _run(
        capsys, "predict", "--model", "colours@nosuchalias", str(clips["red"]),
        "--registry", str(registry),
    )  # fmt: skip
    assert status == 2
    assert "nosuchalias" in err
    assert "Traceback" not in err
    status, _, err = _run(
        capsys, "predict", "--model", "colours@champion", str(clips["broken"]),
        "--registry", str(registry),
    )  # fmt: skip
    assert status == 2
    assert "broken.avi" in err
    assert "Traceback" not in err
    status, _, err = _run(
        capsys, "predict", "--model", "unknown@champion", str(clips["red"]),
        "--registry", str(registry),
    )  # fmt: skip
    assert status == 2
    assert "unknown" in err


def test_predict_vertex_registry_and_gcs_video(
    colour_model_dir: Path,
    clips: dict[str, Path],
    tmp_path: Path,
    vertex_env: VertexTestEnv,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from google.cloud import storage

    settings = RegistrySettings(
        project=vertex_env.project,
        region=vertex_env.region,
        api_endpoint=vertex_env.api_endpoint,
        staging_bucket=vertex_env.staging_bucket,
    )
    result = register_model(
        colour_model_dir,
        write_metrics(tmp_path / "metrics.json", 0.9),
        registry=settings,
        model_name="colours",
        run_id="run-1",
    )
    assert result["registry"] == "vertex"
    upload = vertex_env.fake.requests_to("POST", "models:upload")[0]
    assert upload["model"]["containerSpec"]["imageUri"].startswith(
        "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu."
    )
    assert upload["model"]["artifactUri"].startswith(vertex_env.staging_bucket + "/")
    bucket = storage.Client(project=vertex_env.project).bucket(vertex_env.staging_bucket[5:])
    bucket.blob("videos/red.avi").upload_from_filename(str(clips["red"]))
    common = [
        "--project", vertex_env.project, "--region", vertex_env.region,
        "--api-endpoint", vertex_env.api_endpoint, "--staging-bucket", vertex_env.staging_bucket,
    ]  # fmt: skip
    gcs_video = f"{vertex_env.staging_bucket}/videos/red.avi"
    status, out, err = _run(
        capsys, "predict", "--model", "colours@champion", gcs_video, str(clips["green"]),
        "--json", *common,
    )  # fmt: skip
    assert status == 0, err
    labels = [p["top_k"][0]["label"] for p in json.loads(out)["predictions"]]
    assert labels == ["RedThing", "GreenThing"]
    # Batch prediction: a BatchPredictionJob on the champion's exact version.
    status, out, err = _run(
        capsys, "predict", "--batch", "--model", "colours@champion",
        "--input-list", f"{vertex_env.staging_bucket}/lists/videos.txt",
        "--output", f"{vertex_env.staging_bucket}/predictions", "--json", *common,
    )  # fmt: skip
    assert status == 0, err
    job = vertex_env.fake.requests_to("POST", "batchPredictionJobs")[0]
    assert job["model"].endswith("/models/colours@1")
    assert job["inputConfig"]["gcsSource"]["uris"] == [
        f"{vertex_env.staging_bucket}/lists/videos.txt"
    ]
    assert job["inputConfig"]["instancesFormat"] == "file-list"
    assert json.loads(out)["batch_prediction_job"].split("/")[-2] == "batchPredictionJobs"
