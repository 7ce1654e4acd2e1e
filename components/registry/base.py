"""What every model registry backend offers, and the alias bookkeeping they share.

A registry holds *models* (one per name) made of numbered *versions*. A version carries the model
directory it was registered from, labels, at most one evaluation and any number of *aliases*; an
alias names exactly one version of a model and moves when applied to another. The first version
always has ``default``. The project uses three aliases:

* ``challenger`` - the most recently registered version;
* ``champion`` - the version that serves (``default`` moves with it);
* ``default`` - what an unqualified reference resolves to.

Backends implement a handful of primitive operations (:class:`Registry`'s abstract methods), each
of which is atomic on its own. Champion history for :meth:`Registry.rollback` is kept in a label
(``CHAMPION_SINCE_LABEL``) that records when a version last became champion, so both backends keep
it the same way and the Vertex AI console shows it.
"""

from __future__ import annotations

import abc
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.errors import RegistryError

CHAMPION = "champion"
CHALLENGER = "challenger"
DEFAULT = "default"

RUN_ID_LABEL = "pipeline-run"
STATUS_LABEL = "registration"  # "pending" until the aliases are applied, then "done"
DECISION_LABEL = "promotion"  # "promoted" or "kept" (the gate's decision at registration)
CHAMPION_SINCE_LABEL = "champion-since"  # microseconds since the epoch

_ALIAS_RE = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$")
_MODEL_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_BAD_CHARS = re.compile(r"[^a-z0-9_-]+")


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name (also the Vertex AI model id), else raise.

    Raises:
        RegistryError: Not 1-63 characters of ``[a-z0-9_-]`` starting with a letter.
    """
    if not _MODEL_NAME_RE.match(name):
        raise RegistryError(
            f"invalid model name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter"
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if Vertex AI would accept it as a version alias, else raise.

    Raises:
        RegistryError: Numeric or not matching ``[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]``.
    """
    if alias.isdigit() or not _ALIAS_RE.match(alias):
        raise RegistryError(
            f"invalid alias {alias!r}: aliases start with a lowercase letter, use letters, digits "
            "and '-', and are not numbers"
        )
    return alias


def label_value(value: object) -> str:
    """Coerce ``value`` into a Vertex AI label value (lowercase ``[a-z0-9_-]``, <= 63 chars)."""
    return _LABEL_BAD_CHARS.sub("-", str(value).lower()).strip("-")[:63]


def clean_labels(labels: Mapping[str, object]) -> dict[str, str]:
    """Apply :func:`label_value` to keys and values (keys must not end up empty).

    Raises:
        RegistryError: A key is empty after cleaning.
    """
    cleaned: dict[str, str] = {}
    for key, value in labels.items():
        clean_key = label_value(key)
        if not clean_key or not clean_key[0].isalpha():
            raise RegistryError(f"invalid label key {key!r}: it must start with a letter")
        cleaned[clean_key] = label_value(value)
    return cleaned


def parse_model_ref(ref: str) -> tuple[str, str]:
    """Split ``NAME@ALIAS`` (or ``NAME@VERSION``) into its parts; plain ``NAME`` means default.

    Raises:
        RegistryError: Empty name or reference.
    """
    name, sep, version_ref = ref.partition("@")
    if not name or (sep and not version_ref):
        raise RegistryError(f"invalid model reference {ref!r}: expected NAME@ALIAS or NAME@VERSION")
    return check_model_name(name), version_ref or DEFAULT


@dataclass(frozen=True)
class ModelVersion:
    """One registered version.

    Attributes:
        model_name: The model's name (Vertex AI: its model id).
        version_id: ``"1"``, ``"2"``, ...
        aliases: Aliases currently on this version.
        labels: Version labels (pipeline run, dataset, config, code version, bookkeeping).
        artifact_uri: Where the model files live (local directory or ``gs://`` URI).
        create_time: ISO-8601 creation time.
        resource_name: Backend-specific full name (Vertex AI ``projects/.../models/ID@VER``,
            local: the version directory).
    """

    model_name: str
    version_id: str
    aliases: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    artifact_uri: str = ""
    create_time: str = ""
    resource_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (for ``--json`` output and component results)."""
        return {
            "model_name": self.model_name,
            "version_id": self.version_id,
            "aliases": list(self.aliases),
            "labels": dict(self.labels),
            "artifact_uri": self.artifact_uri,
            "create_time": self.create_time,
            "resource_name": self.resource_name,
        }


class Registry(abc.ABC):
    """A model registry backend: primitives to implement plus shared alias logic."""

    #: Short backend name shown to users ("local" or "vertex").
    kind: str = ""

    # -- primitives -----------------------------------------------------------------------------

    @abc.abstractmethod
    def list_versions(self, model_name: str) -> list[ModelVersion]:
        """All versions of a model, oldest first.

        Raises:
            RegistryError: No model of that name.
        """

    @abc.abstractmethod
    def get_version(self, model_name: str, ref: str) -> ModelVersion:
        """Resolve a version id or alias.

        Raises:
            RegistryError: Unknown model, version or alias.
        """

    @abc.abstractmethod
    def model_exists(self, model_name: str) -> bool:
        """Whether a model of this name has at least one version."""

    @abc.abstractmethod
    def upload_version(
        self, model_name: str, model_dir: Path, labels: Mapping[str, str], description: str = ""
    ) -> ModelVersion:
        """Register ``model_dir`` as a new version; only version 1 gets an alias (``default``)."""

    @abc.abstractmethod
    def import_evaluation(
        self, model_name: str, version_id: str, metrics: Mapping[str, Any], display_name: str
    ) -> None:
        """Attach an evaluation (the evaluate step's metrics.json) to exactly that version."""

    @abc.abstractmethod
    def get_evaluation(self, model_name: str, version_id: str) -> dict[str, Any] | None:
        """The metrics imported onto that version (the latest import), or ``None``."""

    @abc.abstractmethod
    def merge_aliases(
        self, model_name: str, version_id: str, aliases: Sequence[str]
    ) -> ModelVersion:
        """Atomically put ``aliases`` on the version, taking them from any other version.

        An entry ``-alias`` removes that alias from the version instead.
        """

    @abc.abstractmethod
    def update_labels(
        self,
        model_name: str,
        version_id: str,
        set_labels: Mapping[str, str],
        remove: Iterable[str] = (),
    ) -> ModelVersion:
        """Merge ``set_labels`` into the version's labels and drop the keys in ``remove``."""

    @abc.abstractmethod
    def download(self, version: ModelVersion, dest: Path) -> Path:
        """Make the version's model files available locally; returns their directory.

        The result holds either ``saved_model/`` (+ ``label_map.txt``, ``experiment.yaml``) or a
        bare SavedModel with those files under ``assets.extra/``.
        """

    # -- shared logic ---------------------------------------------------------------------------

    def find_by_run_id(self, model_name: str, run_id: str) -> ModelVersion | None:
        """The version registered by pipeline run ``run_id``, if any (newest if several)."""
        if not self.model_exists(model_name):
            return None
        wanted = label_value(run_id)
        matches = [
            v for v in self.list_versions(model_name) if v.labels.get(RUN_ID_LABEL) == wanted
        ]
        return matches[-1] if matches else None

    def champion(self, model_name: str) -> ModelVersion | None:
        """The current champion, or ``None`` when the model or the alias does not exist."""
        if not self.model_exists(model_name):
            return None
        for version in self.list_versions(model_name):
            if CHAMPION in version.aliases:
                return version
        return None

    def promote(self, model_name: str, ref: str) -> ModelVersion:
        """Make a version champion (and default), recording when for :meth:`rollback`.

        The alias move is the commit point; the history label is written after it and is
        repaired by running the command again.
        """
        version = self.get_version(model_name, ref)
        self.merge_aliases(model_name, version.version_id, [CHAMPION, DEFAULT])
        return self.update_labels(
            model_name,
            version.version_id,
            {CHAMPION_SINCE_LABEL: str(_timestamp_us())},
        )

    def champion_history(self, model_name: str) -> list[ModelVersion]:
        """Versions that have been champion, oldest reign first; the current champion is last."""
        versions = self.list_versions(model_name)
        current = next((v for v in versions if CHAMPION in v.aliases), None)

        def since(version: ModelVersion) -> int:
            # The current champion counts as the newest even if its history label was not
            # written yet (a crash right after the alias move).
            if current is not None and version.version_id == current.version_id:
                return 1 << 62
            return int(version.labels.get(CHAMPION_SINCE_LABEL) or 0)

        history = [
            v
            for v in versions
            if v.labels.get(CHAMPION_SINCE_LABEL)
            or (current is not None and v.version_id == current.version_id)
        ]
        return sorted(history, key=since)

    def rollback(self, model_name: str) -> ModelVersion:
        """Give ``champion`` (and ``default``) back to the previous champion.

        The rolled-back version leaves the history, so a second rollback goes one further back.

        Raises:
            RegistryError: No champion, or no earlier champion to return to.
        """
        history = self.champion_history(model_name)
        current = self.champion(model_name)
        if current is None:
            raise RegistryError(f"model {model_name!r} has no champion to roll back")
        previous = [v for v in history if v.version_id != current.version_id]
        if not previous:
            raise RegistryError(
                f"model {model_name!r}: version {current.version_id} is the first champion; "
                "there is no earlier champion to roll back to"
            )
        target = previous[-1]
        self.merge_aliases(model_name, target.version_id, [CHAMPION, DEFAULT])
        self.update_labels(model_name, current.version_id, {}, remove=[CHAMPION_SINCE_LABEL])
        return self.get_version(model_name, target.version_id)


def _timestamp_us() -> int:
    return time.time_ns() // 1000
