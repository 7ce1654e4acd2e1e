"""The embedded registry's storage: concurrent writers, atomic state, files of each version."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from components.registry.local import LocalRegistry
from tests.registry.helpers import MODEL, make_model_dir


def test_concurrent_uploads_get_distinct_versions(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path / "registry")
    model_dirs = [make_model_dir(tmp_path, f"m{i}") for i in range(6)]

    def upload(index: int) -> str:
        # A separate registry object per worker, as separate processes would have.
        reg = LocalRegistry(tmp_path / "registry")
        version = reg.upload_version(MODEL, model_dirs[index], {"worker": str(index)})
        reg.merge_aliases(MODEL, version.version_id, ["challenger"])
        return version.version_id

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(upload, range(6)))
    assert sorted(ids, key=int) == ["1", "2", "3", "4", "5", "6"]
    versions = registry.list_versions(MODEL)
    # Each version holds the files of the directory its worker uploaded, minus checkpoints.
    for version in versions:
        worker = int(version.labels["worker"])
        files = Path(version.artifact_uri)
        assert (
            files / "saved_model" / "saved_model.pb"
        ).read_bytes() == f"graph m{worker}".encode()
        assert not (files / "checkpoints").exists()
    # Exactly one challenger, and the state file is valid JSON with no temporary files left.
    assert sum("challenger" in v.aliases for v in versions) == 1
    state_dir = tmp_path / "registry" / MODEL
    json.loads((state_dir / "registry.json").read_text())
    assert not list(state_dir.glob("*.tmp"))
    assert not list((state_dir / "versions").glob(".*"))
