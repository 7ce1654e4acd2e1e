"""The container images the pipeline runs, and how their references are spelled.

Each image is built from ``infra/docker/<key>.Dockerfile`` and installs this project with the
dependency group of the same key from ``pyproject.toml``. Tests check that the three stay in step.
"""

from __future__ import annotations

import dataclasses

# key -> image repository name inside the Artifact Registry Docker repository.
IMAGE_NAMES: dict[str, str] = {
    "beam": "assemblenet-beam",
    "trainer": "assemblenet-trainer",
    "pipeline": "assemblenet-pipeline",
}


@dataclasses.dataclass(frozen=True, slots=True)
class ImageSet:
    """Fully qualified, immutable image references for one build of the project."""

    beam: str
    trainer: str
    pipeline: str

    @classmethod
    def for_registry(cls, registry: str, tag: str) -> ImageSet:
        """References like ``<registry>/assemblenet-trainer:<tag>``.

        Args:
            registry: Docker registry path, e.g. ``us-central1-docker.pkg.dev/my-proj/assemblenet``.
            tag: an immutable tag (a commit SHA or a release version), never ``latest``.
        """
        if not tag or tag == "latest":
            raise ValueError("image tag must be immutable (a commit SHA or release), not 'latest'")
        registry = registry.rstrip("/")
        return cls(**{key: f"{registry}/{name}:{tag}" for key, name in IMAGE_NAMES.items()})
