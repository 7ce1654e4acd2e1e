"""The embedded model registry: the Vertex AI Model Registry's rules in a local directory.

Layout under the registry root (one directory per model)::

    ROOT/NAME/registry.json        versions (labels, aliases, evaluation), rewritten atomically
    ROOT/NAME/versions/ID/         copy of the registered model directory (no checkpoints)
    ROOT/NAME/.lock                advisory lock held by every read-modify-write

Every change takes the model's lock, reads ``registry.json``, applies the change in memory and
writes it to a temporary file that ``os.replace`` moves over the old one, so concurrent
``assemblenet`` processes and crashes never leave a half-written registry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.registry.base import (
    DEFAULT,
    ModelVersion,
    Registry,
    check_alias,
    check_model_name,
)
from model.errors import RegistryError

log = logging.getLogger(__name__)

_STATE_FILE = "registry.json"
# Training checkpoints are not needed to serve and can be large.
_SKIP_ON_COPY = shutil.ignore_patterns("checkpoints", "*.tmp")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class LocalRegistry(Registry):
    """Model registry in a directory (the default when no GCP project is configured).

    Args:
        root: Registry directory; created on first write.
    """

    kind = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalRegistry({str(self.root)!r})"

    # -- storage --------------------------------------------------------------------------------

    def _model_dir(self, model_name: str) -> Path:
        return self.root / check_model_name(model_name)

    def _read(self, model_name: str) -> dict[str, Any]:
        path = self._model_dir(model_name) / _STATE_FILE
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"name": model_name, "versions": {}}
        except json.JSONDecodeError as error:
            raise RegistryError(f"registry file {path} is corrupt: {error}") from None

    def _write(self, model_name: str, state: dict[str, Any]) -> None:
        model_dir = self._model_dir(model_name)
        fd, tmp = tempfile.mkstemp(prefix=f".{_STATE_FILE}.", suffix=".tmp", dir=model_dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(state, f, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            Path(tmp).replace(model_dir / _STATE_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def _locked(self, model_name: str) -> Iterator[dict[str, Any]]:
        """Hold the model's lock; yields the state, written back if the block succeeds."""
        model_dir = self._model_dir(model_name)
        model_dir.mkdir(parents=True, exist_ok=True)
        with open(model_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._read(model_name)
                yield state
                self._write(model_name, state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _version(self, model_name: str, version_id: str, entry: dict[str, Any]) -> ModelVersion:
        return ModelVersion(
            model_name=model_name,
            version_id=version_id,
            aliases=tuple(entry["aliases"]),
            labels=dict(entry["labels"]),
            artifact_uri=str(self._model_dir(model_name) / "versions" / version_id),
            create_time=entry["create_time"],
            resource_name=str(self._model_dir(model_name) / "versions" / version_id),
        )

    @staticmethod
    def _resolve(state: dict[str, Any], model_name: str, ref: str) -> str:
        versions = state["versions"]
        if not versions:
            raise RegistryError(f"no model named {model_name!r} in the registry")
        if ref in versions:
            return ref
        for version_id, entry in versions.items():
            if ref in entry["aliases"]:
                return version_id
        raise RegistryError(
            f"model {model_name!r} has no version or alias {ref!r} "
            f"(aliases: {', '.join(sorted(_all_aliases(state))) or 'none'}; "
            f"versions: {', '.join(versions)})"
        )

    # -- primitives -----------------------------------------------------------------------------

    def model_exists(self, model_name: str) -> bool:
        return bool(self._read(model_name)["versions"])

    def list_models(self) -> list[str]:
        """Names of the models in the registry."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{_STATE_FILE}"))

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        state = self._read(model_name)
        if not state["versions"]:
            raise RegistryError(f"no model named {model_name!r} in the registry {self.root}")
        return [
            self._version(model_name, version_id, entry)
            for version_id, entry in sorted(state["versions"].items(), key=lambda kv: int(kv[0]))
        ]

    def get_version(self, model_name: str, ref: str) -> ModelVersion:
        state = self._read(model_name)
        version_id = self._resolve(state, model_name, ref)
        return self._version(model_name, version_id, state["versions"][version_id])

    def upload_version(
        self, model_name: str, model_dir: Path, labels: Mapping[str, str], description: str = ""
    ) -> ModelVersion:
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise RegistryError(f"model directory {model_dir} does not exist")
        with self._locked(model_name) as state:
            versions = state["versions"]
            version_id = str(max((int(v) for v in versions), default=0) + 1)
            dest = self._model_dir(model_name) / "versions" / version_id
            if dest.exists():  # left over by a crash between the copy and the state write
                shutil.rmtree(dest)
            staging = dest.with_name(f".{version_id}.{uuid.uuid4().hex}.tmp")
            shutil.copytree(model_dir, staging, ignore=_SKIP_ON_COPY)
            staging.replace(dest)
            versions[version_id] = {
                "aliases": [DEFAULT] if version_id == "1" else [],
                "labels": dict(labels),
                "description": description,
                "source": str(model_dir),
                "create_time": _now(),
                "evaluations": [],
            }
            log.info("registered %s version %s from %s", model_name, version_id, model_dir)
        return self._version(model_name, version_id, versions[version_id])

    def import_evaluation(
        self, model_name: str, version_id: str, metrics: Mapping[str, Any], display_name: str
    ) -> None:
        with self._locked(model_name) as state:
            version_id = self._resolve(state, model_name, version_id)
            state["versions"][version_id]["evaluations"].append(
                {"display_name": display_name, "metrics": dict(metrics), "create_time": _now()}
            )

    def get_evaluation(self, model_name: str, version_id: str) -> dict[str, Any] | None:
        state = self._read(model_name)
        version_id = self._resolve(state, model_name, version_id)
        evaluations = state["versions"][version_id]["evaluations"]
        return dict(evaluations[-1]["metrics"]) if evaluations else None

    def merge_aliases(
        self, model_name: str, version_id: str, aliases: Sequence[str]
    ) -> ModelVersion:
        for raw in aliases:
            check_alias(raw.removeprefix("-"))
            if raw == f"-{DEFAULT}":
                raise RegistryError("the default alias cannot be removed, only moved")
        with self._locked(model_name) as state:
            version_id = self._resolve(state, model_name, version_id)
            target = state["versions"][version_id]["aliases"]
            for raw in aliases:
                if raw.startswith("-"):
                    if raw[1:] in target:
                        target.remove(raw[1:])
                    continue
                for entry in state["versions"].values():
                    if raw in entry["aliases"]:
                        entry["aliases"].remove(raw)
                target.append(raw)
        return self.get_version(model_name, version_id)

    def update_labels(
        self,
        model_name: str,
        version_id: str,
        set_labels: Mapping[str, str],
        remove: Iterable[str] = (),
    ) -> ModelVersion:
        with self._locked(model_name) as state:
            version_id = self._resolve(state, model_name, version_id)
            labels = state["versions"][version_id]["labels"]
            labels.update(set_labels)
            for key in remove:
                labels.pop(key, None)
        return self.get_version(model_name, version_id)

    def download(self, version: ModelVersion, dest: Path) -> Path:
        del dest  # the files are already local
        path = Path(version.artifact_uri)
        if not path.is_dir():
            raise RegistryError(
                f"files of {version.model_name}@{version.version_id} are missing at {path}"
            )
        return path


def _all_aliases(state: dict[str, Any]) -> set[str]:
    return {alias for entry in state["versions"].values() for alias in entry["aliases"]}
