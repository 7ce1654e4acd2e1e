"""Model registry: Vertex AI Model Registry or an embedded registry in a local directory.

``open_registry`` picks the backend from settings: Vertex AI when a GCP project is given, else the
embedded registry (the default for local runs). Both keep the same rules (see
:mod:`components.registry.base`); :func:`should_promote` is the promotion gate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.registry.base import (
    CHALLENGER,
    CHAMPION,
    DEFAULT,
    ModelVersion,
    Registry,
    parse_model_ref,
)
from components.registry.gate import should_promote
from model.errors import RegistryError

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT",
    "DEFAULT_LOCAL_DIR",
    "ModelVersion",
    "Registry",
    "RegistrySettings",
    "open_registry",
    "parse_model_ref",
    "should_promote",
]

#: Where the embedded registry lives when nothing else is configured.
DEFAULT_LOCAL_DIR = "work/registry"


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """Which registry to use.

    Attributes:
        project: GCP project id; when set, the Vertex AI Model Registry is used.
        region: Vertex AI region.
        api_endpoint: Vertex AI API host or ``http://`` URL of a local fake (default: regional).
        staging_bucket: ``gs://`` bucket for model files uploaded to Vertex AI.
        local_dir: Directory of the embedded registry (used when ``project`` is empty).
        serving_image: Serving container for new Vertex AI versions (default: prebuilt TF CPU).
    """

    project: str | None = None
    region: str = "us-central1"
    api_endpoint: str | None = None
    staging_bucket: str | None = None
    local_dir: str = DEFAULT_LOCAL_DIR
    serving_image: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> RegistrySettings:
        """Adapt an environment settings object (``pipeline.settings.Settings`` attributes:
        ``project``, ``region``, ``api_endpoint``, ``staging_bucket``, ``local_registry``)."""
        return cls(
            project=getattr(settings, "project", None) or None,
            region=getattr(settings, "region", None) or "us-central1",
            api_endpoint=getattr(settings, "api_endpoint", None) or None,
            staging_bucket=getattr(settings, "staging_bucket", None) or None,
            local_dir=getattr(settings, "local_registry", None) or DEFAULT_LOCAL_DIR,
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> RegistrySettings:
        """Settings from ``ASSEMBLENET_*`` / Vertex environment variables, then ``overrides``.

        Variables: ``GOOGLE_CLOUD_PROJECT``, ``ASSEMBLENET_REGION``, ``VERTEX_API_ENDPOINT``,
        ``VERTEX_STAGING_BUCKET``, ``ASSEMBLENET_REGISTRY_DIR``. ``None`` overrides are ignored.
        """
        values: dict[str, Any] = {
            "project": os.environ.get("GOOGLE_CLOUD_PROJECT") or None,
            "region": os.environ.get("ASSEMBLENET_REGION", "us-central1"),
            "api_endpoint": os.environ.get("VERTEX_API_ENDPOINT") or None,
            "staging_bucket": os.environ.get("VERTEX_STAGING_BUCKET") or None,
            "local_dir": os.environ.get("ASSEMBLENET_REGISTRY_DIR", DEFAULT_LOCAL_DIR),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse_vertex_uri(uri: str) -> RegistrySettings:
    parts = uri.removeprefix("vertex://").strip("/").split("/")
    if len(parts) == 4 and parts[0] == "projects" and parts[2] == "locations":
        project, region = parts[1], parts[3]
    elif len(parts) == 2:
        project, region = parts
    else:
        project = region = ""
    if not project or not region:
        raise RegistryError(
            f"expected vertex://PROJECT/REGION or vertex://projects/P/locations/L, got {uri!r}"
        )
    return RegistrySettings.from_env(project=project, region=region)


def open_registry(settings: RegistrySettings | Registry | str | os.PathLike[str] | Any) -> Registry:
    """Open the registry the settings name.

    Args:
        settings: :class:`RegistrySettings`; an already open :class:`Registry` (returned as is);
            a local directory path; ``vertex://PROJECT/REGION`` or
            ``vertex://projects/P/locations/L`` (endpoint and staging bucket from
            ``VERTEX_API_ENDPOINT`` / ``VERTEX_STAGING_BUCKET`` when set); or an environment
            settings object with the attributes of ``pipeline.settings.Settings``.

    Returns:
        A :class:`~components.registry.vertex.VertexRegistry` when a project is set, else a
        :class:`~components.registry.local.LocalRegistry`.

    Raises:
        RegistryError: A malformed ``vertex://`` URI.
    """
    if isinstance(settings, Registry):
        return settings
    if isinstance(settings, str) and settings.startswith("vertex://"):
        settings = _parse_vertex_uri(settings)
    elif isinstance(settings, str | os.PathLike):
        settings = RegistrySettings(local_dir=os.fspath(settings))
    elif not isinstance(settings, RegistrySettings):
        settings = RegistrySettings.from_settings(settings)
    if settings.project:
        from components.registry.vertex import DEFAULT_SERVING_IMAGE, VertexRegistry

        return VertexRegistry(
            settings.project,
            settings.region,
            api_endpoint=settings.api_endpoint,
            staging_bucket=settings.staging_bucket,
            serving_image=settings.serving_image or DEFAULT_SERVING_IMAGE,
        )
    from components.registry.local import LocalRegistry

    return LocalRegistry(Path(settings.local_dir))
