"""Vertex AI Model Registry backend (google-cloud-aiplatform SDK, REST transport).

One registry *model* is one Vertex AI model whose id is the model name; every registration is a
new version of it (``parent_model``) served by the prebuilt TensorFlow container. The model files
are staged to ``gs://STAGING_BUCKET/assemblenet-models/NAME/UNIQUE/`` as a bare SavedModel (what
the serving container loads) with ``label_map.txt`` and ``experiment.yaml`` under
``assets.extra/``, where TensorFlow Serving keeps files it does not load.

The transport is REST and the endpoint configurable, so tests aim the real client at a local fake
(``tests/fakes``); an ``http://`` endpoint is an emulator and gets anonymous credentials.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from components.registry.base import (
    RUN_ID_LABEL,
    ModelVersion,
    Registry,
    check_model_name,
    label_value,
)
from model.errors import RegistryError

log = logging.getLogger(__name__)

#: Prebuilt TensorFlow serving image (https://cloud.google.com/vertex-ai/docs/predictions/pre-built-containers).
DEFAULT_SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
CLASSIFICATION_METRICS_SCHEMA = (
    "gs://google-cloud-aiplatform/schema/modelevaluation/classification_metrics_1.0.0.yaml"
)
_EXTRA_FILES = ("label_map.txt", "experiment.yaml", "train_summary.json")

T = TypeVar("T")


def classification_evaluation(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Translate the evaluate step's ``metrics.json`` into Vertex AI's classification schema.

    The schema's ``confusionMatrix`` carries the matrix and class names; scalar metrics (top-1,
    top-5, mean per-class accuracy, ...) have no slot in it, so they travel in ``metadata``.

    Returns:
        ``{"metrics": {...}, "metadata": {"metrics": {name: float}}}``.
    """
    scalars = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    schema_metrics: dict[str, Any] = {}
    names = metrics.get("class_names")
    matrix = metrics.get("confusion_matrix")
    if isinstance(names, list) and isinstance(matrix, list):
        schema_metrics["confusionMatrix"] = {
            "annotationSpecs": [{"displayName": str(n)} for n in names],
            "rows": [[float(x) for x in row] for row in matrix],
        }
    return {"metrics": schema_metrics, "metadata": {"metrics": scalars}}


class VertexRegistry(Registry):
    """Registry on Vertex AI.

    Args:
        project: GCP project id.
        region: Vertex AI region.
        api_endpoint: API host (default ``REGION-aiplatform.googleapis.com``); an ``http://``
            URL selects anonymous credentials (local fakes).
        staging_bucket: ``gs://`` bucket for model files (required to upload).
        serving_image: Serving container of new versions.
        credentials: Explicit credentials (default: application default credentials).
    """

    kind = "vertex"

    def __init__(
        self,
        project: str,
        region: str,
        *,
        api_endpoint: str | None = None,
        staging_bucket: str | None = None,
        serving_image: str = DEFAULT_SERVING_IMAGE,
        credentials: Any = None,
    ) -> None:
        from google.cloud import aiplatform
        from google.cloud.aiplatform_v1 import ModelServiceClient

        if credentials is None and api_endpoint and api_endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        self.project = project
        self.region = region
        self.api_endpoint = api_endpoint or f"{region}-aiplatform.googleapis.com"
        self.staging_bucket = staging_bucket.rstrip("/") if staging_bucket else None
        self.serving_image = serving_image
        self.credentials = credentials
        aiplatform.init(
            project=project,
            location=region,
            credentials=credentials,
            api_endpoint=self.api_endpoint,
            api_transport="rest",
            staging_bucket=self.staging_bucket,
        )
        self._client = ModelServiceClient(
            credentials=credentials,
            transport="rest",
            client_options={"api_endpoint": self.api_endpoint},
        )

    def __repr__(self) -> str:
        return f"VertexRegistry(project={self.project!r}, region={self.region!r})"

    # -- helpers --------------------------------------------------------------------------------

    def model_path(self, model_name: str) -> str:
        """``projects/P/locations/R/models/NAME``."""
        check_model_name(model_name)
        return f"projects/{self.project}/locations/{self.region}/models/{model_name}"

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run an API call, turning "not found" and "invalid" answers into RegistryError."""
        from google.api_core import exceptions

        try:
            return fn()
        except (exceptions.NotFound, exceptions.InvalidArgument) as error:
            raise RegistryError(f"{what}: {error.message}") from None

    def _to_version(self, model_name: str, model: Any) -> ModelVersion:
        created = model.version_create_time
        return ModelVersion(
            model_name=model_name,
            version_id=str(model.version_id),
            aliases=tuple(model.version_aliases),
            labels=dict(model.labels),
            artifact_uri=model.artifact_uri,
            create_time=created.isoformat() if created else "",
            resource_name=f"{model.name}@{model.version_id}",
        )

    # -- primitives -----------------------------------------------------------------------------

    def model_exists(self, model_name: str) -> bool:
        from google.api_core import exceptions

        try:
            self._client.get_model(name=self.model_path(model_name))
        except exceptions.NotFound:
            return False
        return True

    def list_models(self) -> list[str]:
        """Ids of the models in the project and region."""
        parent = f"projects/{self.project}/locations/{self.region}"
        models = self._call(
            f"cannot list models in {parent}", lambda: list(self._client.list_models(parent=parent))
        )
        return sorted({m.name.rsplit("/", 1)[-1] for m in models})

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        pager = self._call(
            f"model {model_name!r} not found in {self.project}/{self.region}",
            lambda: list(self._client.list_model_versions(name=self.model_path(model_name))),
        )
        versions = [self._to_version(model_name, m) for m in pager]
        return sorted(versions, key=lambda v: int(v.version_id))

    def find_by_run_id(self, model_name: str, run_id: str) -> ModelVersion | None:
        """Server-side lookup of the version labelled with this pipeline run."""
        if not self.model_exists(model_name):
            return None
        models = self._call(
            f"cannot list versions of {model_name!r}",
            lambda: list(
                self._client.list_model_versions(
                    request={
                        "name": self.model_path(model_name),
                        "filter": f'labels.{RUN_ID_LABEL}="{label_value(run_id)}"',
                    }
                )
            ),
        )
        versions = sorted(
            (self._to_version(model_name, m) for m in models), key=lambda v: int(v.version_id)
        )
        return versions[-1] if versions else None

    def get_version(self, model_name: str, ref: str) -> ModelVersion:
        model = self._call(
            f"model {model_name!r} has no version or alias {ref!r} in {self.project}/{self.region}",
            lambda: self._client.get_model(name=f"{self.model_path(model_name)}@{ref}"),
        )
        return self._to_version(model_name, model)

    def stage_model_files(self, model_dir: Path, destination: str) -> str:
        """Copy the SavedModel and its side files to ``destination`` (``gs://``); returns it."""
        from google.cloud import storage

        saved_model = model_dir / "saved_model"
        if not (saved_model / "saved_model.pb").is_file():
            raise RegistryError(f"{model_dir} has no saved_model/saved_model.pb to register")
        bucket_name, _, prefix = destination.removeprefix("gs://").partition("/")
        client = storage.Client(project=self.project, credentials=self._storage_credentials())
        bucket = client.bucket(bucket_name)
        files = [(p, p.relative_to(saved_model).as_posix()) for p in saved_model.rglob("*")]
        files += [(model_dir / n, f"assets.extra/{n}") for n in _EXTRA_FILES]
        count = 0
        for path, name in files:
            if path.is_file():
                bucket.blob(f"{prefix}/{name}").upload_from_filename(str(path))
                count += 1
        log.info("staged %d model files to %s", count, destination)
        return destination

    def _storage_credentials(self) -> Any:
        return self.credentials

    def upload_version(
        self, model_name: str, model_dir: Path, labels: Mapping[str, str], description: str = ""
    ) -> ModelVersion:
        from google.cloud import aiplatform

        staging = self.staging_bucket
        if not staging and str(model_dir).startswith("/gcs/"):
            # In a Vertex AI pipeline task the model artifact is a Cloud Storage FUSE path:
            # stage into the same bucket, which the pipeline's service account can write.
            staging = "gs://" + str(model_dir).removeprefix("/gcs/").split("/", 1)[0]
        if not staging:
            raise RegistryError(
                "registering on Vertex AI needs a staging bucket: set staging_bucket "
                "(VERTEX_STAGING_BUCKET) to a gs:// bucket"
            )
        exists = self.model_exists(model_name)
        artifact_uri = self.stage_model_files(
            Path(model_dir), f"{staging}/assemblenet-models/{model_name}/{uuid.uuid4().hex}"
        )
        from google.api_core import exceptions

        def upload(first: bool) -> Any:
            return aiplatform.Model.upload(
                display_name=model_name,
                model_id=model_name if first else None,
                parent_model=None if first else self.model_path(model_name),
                # Only a first version is default; later ones get aliases after the gate.
                is_default_version=first,
                artifact_uri=artifact_uri,
                serving_container_image_uri=self.serving_image,
                labels=dict(labels),
                version_description=description,
                project=self.project,
                location=self.region,
                credentials=self.credentials,
                sync=True,
            )

        try:
            model = upload(first=not exists)
        except exceptions.AlreadyExists:
            # Another run created the model between our check and upload: add a version.
            model = upload(first=False)
        log.info("uploaded %s version %s", model_name, model.version_id)
        return self.get_version(model_name, str(model.version_id))

    def import_evaluation(
        self, model_name: str, version_id: str, metrics: Mapping[str, Any], display_name: str
    ) -> None:
        evaluation = classification_evaluation(metrics)
        self._call(
            f"cannot import the evaluation onto {model_name}@{version_id}",
            lambda: self._client.import_model_evaluation(
                parent=f"{self.model_path(model_name)}@{version_id}",
                model_evaluation={
                    "display_name": display_name,
                    "metrics_schema_uri": CLASSIFICATION_METRICS_SCHEMA,
                    **evaluation,
                },
            ),
        )

    def get_evaluation(self, model_name: str, version_id: str) -> dict[str, Any] | None:
        from google.cloud.aiplatform_v1.types import ModelEvaluation

        evaluations = self._call(
            f"cannot list evaluations of {model_name}@{version_id}",
            lambda: list(
                self._client.list_model_evaluations(
                    parent=f"{self.model_path(model_name)}@{version_id}"
                )
            ),
        )
        if not evaluations:
            return None
        metadata = ModelEvaluation.to_dict(evaluations[-1]).get("metadata") or {}
        return dict(metadata.get("metrics") or {})

    def merge_aliases(
        self, model_name: str, version_id: str, aliases: Sequence[str]
    ) -> ModelVersion:
        model = self._call(
            f"cannot set aliases {list(aliases)} on {model_name}@{version_id}",
            lambda: self._client.merge_version_aliases(
                name=f"{self.model_path(model_name)}@{version_id}", version_aliases=list(aliases)
            ),
        )
        return self._to_version(model_name, model)

    def update_labels(
        self,
        model_name: str,
        version_id: str,
        set_labels: Mapping[str, str],
        remove: Iterable[str] = (),
    ) -> ModelVersion:
        current = self.get_version(model_name, version_id)
        labels = {**current.labels, **set_labels}
        for key in remove:
            labels.pop(key, None)
        model = self._call(
            f"cannot update labels of {model_name}@{version_id}",
            lambda: self._client.update_model(
                model={"name": f"{self.model_path(model_name)}@{version_id}", "labels": labels},
                update_mask={"paths": ["labels"]},
            ),
        )
        return self._to_version(model_name, model)

    def download(self, version: ModelVersion, dest: Path) -> Path:
        """Download the version's ``gs://`` files with google-cloud-storage.

        ``tf.io.gfile`` could read gs:// directly, but its endpoint cannot be redirected to an
        emulator; a local copy also keeps TensorFlow off the network.
        """
        from google.cloud import storage

        uri = version.artifact_uri
        if not uri.startswith("gs://"):
            raise RegistryError(f"{version.resource_name} has a non-gs:// artifact URI {uri!r}")
        bucket_name, _, prefix = uri.removeprefix("gs://").partition("/")
        prefix = prefix.rstrip("/") + "/"
        client = storage.Client(project=self.project, credentials=self._storage_credentials())
        count = 0
        for blob in client.list_blobs(bucket_name, prefix=prefix):
            if blob.name.endswith("/"):
                continue
            target = dest / blob.name[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
            count += 1
        if count == 0:
            raise RegistryError(f"no model files under {uri}")
        log.info("downloaded %d files of %s to %s", count, version.resource_name, dest)
        return dest

    # -- batch prediction -----------------------------------------------------------------------

    def batch_predict(
        self,
        model_name: str,
        ref: str,
        *,
        input_list: str,
        output_prefix: str,
        machine_type: str = "n1-standard-4",
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Submit a BatchPredictionJob on the version ``ref`` resolves to; returns the job name.

        Args:
            input_list: ``gs://`` text file with one video URI per line (``file-list`` format:
                the service reads each file and sends its bytes to the serving container).
            output_prefix: ``gs://`` prefix for the JSON-lines predictions.
        """
        from google.cloud import aiplatform

        for uri, what in ((input_list, "--input-list"), (output_prefix, "--output")):
            if not uri.startswith("gs://"):
                raise RegistryError(f"{what} must be a gs:// URI, got {uri!r}")
        version = self.get_version(model_name, ref)
        job = aiplatform.BatchPredictionJob.submit(
            job_display_name=f"{model_name}-{ref}-batch",
            model_name=version.resource_name,
            instances_format="file-list",
            predictions_format="jsonl",
            gcs_source=input_list,
            gcs_destination_prefix=output_prefix,
            machine_type=machine_type,
            labels=dict(labels or {}),
            project=self.project,
            location=self.region,
            credentials=self.credentials,
        )
        log.info("submitted batch prediction job %s", job.resource_name)
        return str(job.resource_name)
