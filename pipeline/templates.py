"""Pipeline templates in Artifact Registry (the Kubeflow template registry), referenced by digest.

``upload-template`` pushes the compiled ``pipeline.yaml`` with ``kfp.registry.RegistryClient`` and
returns its ``sha256:`` version. Runs and schedules then reference the template by that digest:
a tag such as ``latest`` or ``v0.1.0`` can move, and Vertex resolves tags with the service
agent's identity, which fails without extra IAM (googleapis/python-aiplatform#2181, #2398), so
tags in template URIs are resolved to digests here before a job is created.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.errors import ConfigError, RegistryError
from pipeline.settings import Settings

logger = logging.getLogger(__name__)

DIGEST_PREFIX = "sha256:"
AR_TEMPLATE_RE = re.compile(
    r"^(?P<host>https://[\w-]+-kfp\.pkg\.dev/[^/]+/[^/]+)/(?P<package>[^/]+)/(?P<ref>[^/]+)$"
)


def registry_client(host: str) -> Any:
    """A ``RegistryClient`` for ``host`` (Artifact Registry: Google auth; other hosts: none)."""
    from kfp.registry import RegistryClient

    try:
        return RegistryClient(host=host)
    except Exception as error:  # google.auth.DefaultCredentialsError and ValueError
        raise ConfigError(f"cannot use template registry {host}: {error}") from None


def _template_host(settings: Settings, host: str | None) -> str:
    host = host or settings.template_registry
    if not host:
        raise ConfigError(
            "no template registry: set `template_registry` in the environment config "
            "(https://REGION-kfp.pkg.dev/PROJECT/REPO) or pass --host"
        )
    return host.rstrip("/")


def _http_error(action: str, error: Exception) -> RegistryError:
    return RegistryError(f"template registry: {action} failed: {error}")


def upload_template(
    settings: Settings,
    template: str | Path,
    *,
    tags: Sequence[str] = (),
    host: str | None = None,
) -> dict[str, str]:
    """Uploads a compiled pipeline to the template registry.

    Args:
        settings: environment (``template_registry`` is the default host).
        template: compiled pipeline YAML.
        tags: tags to attach (e.g. the release and ``latest``); the version is its digest.
        host: registry host override.

    Returns:
        ``{"package", "version" (sha256:...), "uri" (host/package/sha256:...), "tags"}``.

    Raises:
        ConfigError: missing template or no registry configured.
        RegistryError: the registry refused the upload.
    """
    import requests

    from pipeline.submit import check_template

    path = check_template(str(template))
    host = _template_host(settings, host)
    client = registry_client(host)
    try:
        package, version = client.upload_pipeline(file_name=path, tags=list(tags) or None)
    except (requests.RequestException, ValueError) as error:
        raise _http_error(f"upload of {path} to {host}", error) from None
    if not version.startswith(DIGEST_PREFIX):
        raise RegistryError(f"template registry returned {version!r}, not a sha256 digest")
    uri = f"{host}/{package}/{version}"
    logger.info("uploaded %s as %s", path, uri)
    return {"package": package, "version": version, "uri": uri, "tags": ",".join(tags)}


def resolve_tag(host: str, package: str, tag: str) -> str:
    """Returns the ``sha256:`` version a tag of ``package`` points at.

    Raises:
        RegistryError: unknown package or tag.
    """
    import requests

    client = registry_client(host)
    try:
        info = client.get_tag(package, tag)
    except requests.HTTPError as error:
        raise RegistryError(f"template {package}:{tag} not found in {host} ({error})") from None
    except requests.RequestException as error:
        raise _http_error(f"lookup of {package}:{tag}", error) from None
    version = str(info.get("version", "")).rsplit("/", 1)[-1]
    if not version.startswith(DIGEST_PREFIX):
        raise RegistryError(f"tag {package}:{tag} in {host} points at no digest: {info}")
    return version


def resolve_template_uri(template: str, settings: Settings | None = None) -> str:
    """Rewrites ``https://…-kfp.pkg.dev/P/R/PKG/TAG`` to ``…/PKG/sha256:…``; others unchanged."""
    del settings  # the host is part of the URI
    match = AR_TEMPLATE_RE.match(template)
    if not match or match["ref"].startswith(DIGEST_PREFIX):
        return template
    digest = resolve_tag(match["host"], match["package"], match["ref"])
    resolved = f"{match['host']}/{match['package']}/{digest}"
    logger.info("template %s resolves to %s", template, resolved)
    return resolved
