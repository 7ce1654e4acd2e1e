"""Environment settings: where the pipeline runs (project, region, buckets, identities, images).

An environment is one YAML file (``pipeline/configs/dev.yaml``, ``prod.yaml``) whose keys are the
fields of :class:`Settings`. The loader is strict: an unknown key or a value of the wrong type
raises :class:`model.errors.ConfigError` naming the key and the file, so a typo never silently
falls back to a default. Command-line flags override single keys after the file is read.

Nothing here talks to the cloud; the submit, schedule and template modules read these settings.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from model.errors import ConfigError

# Used in the committed pipeline.yaml so that it never names a real project; `make compile` and
# the image build (infra/) substitute real values through a settings file or flags.
PLACEHOLDER_REGISTRY = "us-central1-docker.pkg.dev/my-project/assemblenet"


def project_version() -> str:
    """The installed distribution's version, used as the default immutable image tag."""
    try:
        return importlib.metadata.version("assemblenet-pipeline")
    except importlib.metadata.PackageNotFoundError:  # running from a bare checkout
        return "0.0.0"


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """One deployment environment.

    Attributes:
        project: GCP project id; ``None`` means "no cloud": registration uses the embedded local
            registry and submit/schedule commands refuse to run.
        region: Vertex AI / Dataflow region.
        pipeline_root: ``gs://`` prefix for pipeline artifacts.
        staging_bucket: ``gs://`` bucket for SDK staging (model uploads, Dataflow temp files).
        service_account: identity pipeline runs (and the steps they launch) act as.
        network: full VPC network name for peering, e.g.
            ``projects/123/global/networks/vpc``; ``None`` for the default network.
        kms_key: Cloud KMS key for CMEK on pipeline jobs and the resources they create.
        image_registry: Docker registry path holding the three project images.
        image_tag: immutable image tag (commit SHA or release); defaults to the project version.
        template_registry: Kubeflow Artifact Registry host for ``upload-template``, e.g.
            ``https://us-central1-kfp.pkg.dev/my-project/pipelines``.
        api_endpoint: Vertex AI API endpoint override (tests point it at a local fake).
        api_transport: ``grpc`` (production default) or ``rest`` (needed for http:// endpoints).
        local_registry: directory of the embedded registry, used when ``project`` is unset.
        model_display_name: Model Registry model that pipeline runs register versions of.
        labels: labels put on every pipeline run and registered version.
        schedule_time_zone: IANA time zone for schedule cron expressions.
    """

    project: str | None = None
    region: str = "us-central1"
    pipeline_root: str | None = None
    staging_bucket: str | None = None
    service_account: str | None = None
    network: str | None = None
    kms_key: str | None = None
    image_registry: str = PLACEHOLDER_REGISTRY
    image_tag: str = dataclasses.field(default_factory=project_version)
    template_registry: str | None = None
    api_endpoint: str | None = None
    api_transport: str = "grpc"
    local_registry: str | None = None
    model_display_name: str = "assemblenet"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    schedule_time_zone: str = "UTC"

    def __post_init__(self) -> None:
        if not self.image_tag or self.image_tag == "latest":
            raise ConfigError(
                f"image_tag must be immutable (a commit SHA or release), got {self.image_tag!r}"
            )
        if self.api_transport not in ("grpc", "rest"):
            raise ConfigError(f"api_transport must be 'grpc' or 'rest', got {self.api_transport!r}")
        for key in ("pipeline_root", "staging_bucket"):
            value = getattr(self, key)
            if value is not None and not value.startswith("gs://"):
                raise ConfigError(f"{key} must be a gs:// URI, got {value!r}")
        for key, value in self.labels.items():
            # Vertex label rule: lowercase letters, digits, '_' and '-', at most 63 characters.
            if not _LABEL_RE.fullmatch(key) or not _LABEL_VALUE_RE.fullmatch(value):
                raise ConfigError(
                    f"label {key}={value!r} is not a valid Vertex AI label "
                    "(lowercase letters, digits, '_' or '-', at most 63 characters)"
                )
        # Freeze the mapping so the frozen dataclass is really immutable.
        object.__setattr__(self, "labels", types.MappingProxyType(dict(self.labels)))

    @property
    def has_cloud(self) -> bool:
        """Whether a GCP project is configured (otherwise everything stays local)."""
        return bool(self.project)

    def require_cloud(self, command: str) -> str:
        """Returns the project, or raises ConfigError saying ``command`` needs one."""
        if not self.project:
            raise ConfigError(
                f"`{command}` needs a GCP project: set `project` in the environment config "
                "(--env pipeline/configs/dev.yaml) or pass --project"
            )
        return self.project

    def images(self) -> Any:
        """The :class:`pipeline.images.ImageSet` these settings select."""
        from pipeline.images import ImageSet

        try:
            return ImageSet.for_registry(self.image_registry, self.image_tag)
        except ValueError as error:
            raise ConfigError(f"image_tag: {error}") from None


_LABEL_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")


def _check_type(key: str, value: object, annotation: object, source: str) -> object:
    """Returns ``value`` if it matches ``annotation``; raises ConfigError naming key and source."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        (annotation,) = [option for option in options if option is not type(None)]
        origin = typing.get_origin(annotation)
    if origin is not None and issubclass(origin, Mapping):
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{source}: key {key!r} must be a mapping of strings to strings")
        return dict(value)
    if annotation is str and isinstance(value, str):
        return value
    raise ConfigError(
        f"{source}: key {key!r} must be {getattr(annotation, '__name__', annotation)}, "
        f"got {type(value).__name__} {value!r}"
    )


def settings_from_mapping(values: Mapping[str, object], source: str = "settings") -> Settings:
    """Builds :class:`Settings` from a mapping, rejecting unknown keys and wrong types.

    Args:
        values: key -> value, e.g. a parsed YAML document.
        source: where the values came from, quoted in error messages.

    Raises:
        ConfigError: an unknown key, a wrong type or an invalid value.
    """
    hints = typing.get_type_hints(Settings)
    known = {field.name for field in dataclasses.fields(Settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(sorted(known))}"
        )
    checked = {key: _check_type(key, value, hints[key], source) for key, value in values.items()}
    try:
        return Settings(**checked)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def load_settings(
    path: str | Path | None = None, overrides: Mapping[str, object | None] | None = None
) -> Settings:
    """Reads an environment config YAML and applies command-line overrides.

    Args:
        path: YAML file with :class:`Settings` keys; ``None`` starts from the defaults (local,
            no cloud).
        overrides: key -> value from flags; ``None`` values mean "flag not given" and are
            ignored.

    Returns:
        The validated settings.

    Raises:
        ConfigError: the file is missing or not a YAML mapping, or a key/value is invalid.
    """
    values: dict[str, object] = {}
    source = "settings"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"environment config {source} does not exist") from None
        except OSError as error:
            raise ConfigError(f"cannot read environment config {source}: {error}") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{source} is not valid YAML: {error}") from None
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(document)}")
        values.update(document)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    if overrides and any(value is not None for value in overrides.values()) and path:
        source = f"{path} (with command-line overrides)"
    return settings_from_mapping(values, source)
