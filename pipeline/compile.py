"""Compiles the pipeline to its YAML package (``pipeline.yaml`` at the repo root for Vertex).

The committed ``pipeline.yaml`` is generated, never hand-edited: it is the ``vertex`` target
compiled with the placeholder image registry and the project version as the image tag, and a test
recompiles it and fails on any difference. Compilation is deterministic (same inputs, same bytes).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pipeline.dag import TARGETS, TrainerResources, build_pipeline
from pipeline.images import ImageSet
from pipeline.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "pipeline.yaml"


def default_images() -> ImageSet:
    """Images of the committed pipeline.yaml: placeholder registry, project-version tag."""
    return Settings().images()


def compile_pipeline(
    target: str = "vertex",
    output: str | Path = DEFAULT_OUTPUT,
    *,
    images: ImageSet | None = None,
    trainer: TrainerResources | None = None,
) -> Path:
    """Compiles one target to a YAML pipeline package, atomically.

    Args:
        target: ``vertex`` or ``local``.
        output: destination file; written under a temporary name and renamed, so a failed
            compile never leaves a half-written package.
        images: image references (default: :func:`default_images`).
        trainer: TPU machine for the training custom job (default: v3-8).

    Returns:
        The path written.
    """
    from kfp import compiler

    from model.errors import ConfigError

    if target not in TARGETS:
        raise ConfigError(f"unknown pipeline target {target!r}; valid: {', '.join(TARGETS)}")
    output = Path(output)
    if not output.parent.is_dir():
        raise ConfigError(f"output directory {output.parent} does not exist")
    pipeline_func = build_pipeline(target, images or default_images(), trainer=trainer)  # type: ignore[arg-type]
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".yaml", dir=output.parent)
    os.close(fd)
    try:
        compiler.Compiler().compile(pipeline_func, tmp_name)
        Path(tmp_name).chmod(0o644)
        Path(tmp_name).replace(output)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return output
