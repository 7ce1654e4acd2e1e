"""Classify videos with a registered model: ``NAME@ALIAS`` -> version -> SavedModel -> top-k.

The version is resolved in the registry (Vertex AI or embedded), its files are made local (Vertex:
downloaded from ``gs://`` with google-cloud-storage), and each video - a local path or a ``gs://``
URI - is decoded exactly as preprocessing stores clips (``model.data.video_io``: PyAV, every
frame, JPEG quality 90). The SavedModel's ``serving_jpeg`` signature then takes the evaluation
centre window of T frames at the trained temporal stride, resizes and centre-crops in-graph, as
evaluation does. A SavedModel without that signature gets the same centre window sampled here
and fed as uint8 frames to ``serving_default``.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.registry import Registry, RegistrySettings, open_registry, parse_model_ref
from model.errors import DataError, RegistryError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """A loaded SavedModel and what it needs to classify a clip.

    Attributes:
        saved_model: The loaded object (``tf.saved_model.load``).
        class_names: K class names in index order.
        num_frames: T, frames per clip.
        temporal_stride: Step between sampled frames.
    """

    saved_model: Any
    class_names: list[str]
    num_frames: int
    temporal_stride: int


def _side_file(root: Path, name: str) -> Path | None:
    # Embedded registry: files next to saved_model/; Vertex: under the SavedModel's assets.extra/.
    for candidate in (root / name, root / "assets.extra" / name):
        if candidate.is_file():
            return candidate
    return None


def load_served_model(model_dir: str | Path) -> ServedModel:
    """Load a model directory (training output or a registry version's files).

    Args:
        model_dir: Holds ``saved_model/`` plus ``label_map.txt`` / ``experiment.yaml``, or is a
            bare SavedModel with them under ``assets.extra/``.

    Raises:
        RegistryError: No SavedModel or label map, or a label map that does not match the model.
    """
    import tensorflow as tf
    import yaml

    from model.data.schema import read_label_map

    root = Path(model_dir)
    saved_dir = root / "saved_model" if (root / "saved_model").is_dir() else root
    if not (saved_dir / "saved_model.pb").is_file():
        raise RegistryError(f"no SavedModel (saved_model.pb) in {root}")
    label_map = _side_file(root, "label_map.txt") or _side_file(saved_dir, "label_map.txt")
    if label_map is None:
        raise RegistryError(f"no label_map.txt with the model in {root}")
    class_names = read_label_map(label_map)
    loaded = tf.saved_model.load(str(saved_dir))
    signature = loaded.signatures["serving_default"]
    spec = next(iter(signature.structured_input_signature[1].values()))
    num_frames = int(spec.shape[1]) if spec.shape.rank == 5 and spec.shape[1] else 0
    stride = 1
    experiment = _side_file(root, "experiment.yaml") or _side_file(saved_dir, "experiment.yaml")
    if experiment is not None:
        data = (yaml.safe_load(experiment.read_text()) or {}).get("data") or {}
        stride = int(data.get("temporal_stride", 1))
        num_frames = num_frames or int(data.get("num_frames", 0))
    if num_frames <= 0:
        raise RegistryError(f"cannot tell the clip length of the model in {root}")
    outputs = signature.structured_outputs["probabilities"]
    if outputs.shape[-1] is not None and int(outputs.shape[-1]) != len(class_names):
        raise RegistryError(
            f"label_map.txt has {len(class_names)} classes but the model predicts "
            f"{outputs.shape[-1]}"
        )
    return ServedModel(loaded, class_names, num_frames, stride)


def _open_video(uri: str, storage_client: Any) -> Any:
    """A local path as is, or the bytes of a ``gs://`` object in memory."""
    if not uri.startswith("gs://"):
        if not Path(uri).is_file():
            raise DataError(f"video {uri} does not exist")
        return uri
    from google.api_core import exceptions

    bucket, _, name = uri.removeprefix("gs://").partition("/")
    try:
        data = storage_client.bucket(bucket).blob(name).download_as_bytes()
    except exceptions.NotFound:
        raise DataError(f"video {uri} does not exist") from None
    buffer = io.BytesIO(data)
    buffer.name = uri
    return buffer


def classify(served: ServedModel, source: Any, *, top_k: int = 5) -> list[dict[str, Any]]:
    """Top-k classes of one video: ``[{"label", "index", "probability"}]``, best first.

    Raises:
        DataError: The video cannot be decoded (``model.data.video_io.VideoDecodeError``).
    """
    import numpy as np
    import tensorflow as tf

    from model.data import video_io

    signatures = served.saved_model.signatures
    if "serving_jpeg" in signatures:
        encoded = video_io.decode_video_to_jpegs(source)
        frames = tf.constant([encoded.jpeg_frames], dtype=tf.string)  # (1, N)
        probabilities = signatures["serving_jpeg"](frames=frames)["probabilities"]
    else:
        from model.data.video_ops import sample_eval_indices

        decoded = video_io.decode_video(source)
        indices = sample_eval_indices(
            len(decoded.frames), served.num_frames, served.temporal_stride
        )[0].numpy()
        clip = decoded.frames[indices][None]  # (1, T, H, W, 3) uint8
        probabilities = signatures["serving_default"](frames=tf.constant(clip))["probabilities"]
    scores = np.asarray(probabilities)[0]
    order = np.argsort(-scores)[: max(1, top_k)]
    return [
        {"label": served.class_names[i], "index": int(i), "probability": float(scores[i])}
        for i in order
    ]


def predict(
    model_ref: str,
    videos: Sequence[str],
    *,
    registry: RegistrySettings | Registry | str | Path,
    top_k: int = 5,
) -> list[dict[str, Any]]:
    """Classify videos with the registry version ``model_ref`` resolves to.

    Args:
        model_ref: ``NAME@ALIAS`` or ``NAME@VERSION`` (``NAME`` alone means ``NAME@default``).
        videos: Local paths or ``gs://`` URIs.
        registry: Registry settings, an open registry, or a local registry directory.
        top_k: Classes to report per video.

    Returns:
        One ``{"video", "model", "version_id", "top_k": [{"label", "index", "probability"}]}``
        per video, in input order.

    Raises:
        RegistryError: Unknown model, alias or version; unusable model files.
        DataError: A video is missing or cannot be decoded.
    """
    if not videos:
        raise DataError("no videos to classify")
    if top_k < 1:
        raise DataError(f"--top-k must be >= 1, got {top_k}")
    model_name, ref = parse_model_ref(model_ref)
    reg = open_registry(registry)
    version = reg.get_version(model_name, ref)
    storage_client = None
    if any(v.startswith("gs://") for v in videos):
        from google.cloud import storage

        storage_client = storage.Client(project=getattr(reg, "project", None))
    with tempfile.TemporaryDirectory(prefix="assemblenet-predict-") as tmp:
        served = load_served_model(reg.download(version, Path(tmp)))
        results = []
        started = time.monotonic()
        for count, video in enumerate(videos, start=1):
            top = classify(served, _open_video(video, storage_client), top_k=top_k)
            results.append(
                {
                    "video": video,
                    "model": f"{model_name}@{ref}",
                    "version_id": version.version_id,
                    "top_k": top,
                }
            )
            log.info(
                "%d/%d %s -> %s (%.3f); %.2f videos/s",
                count,
                len(videos),
                video,
                top[0]["label"],
                top[0]["probability"],
                count / max(time.monotonic() - started, 1e-9),
            )
    return results
