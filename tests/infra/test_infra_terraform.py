"""Terraform under infra/terraform, read with python-hcl2: least privilege and safe storage.

No service account may hold a primitive role (owner/editor) or any *admin role; buckets are
private, uniform-access and versioned where data must survive; temporary files expire. Each rule
is also shown to fire on a broken input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "infra" / "terraform"
MODULE_DIR = TF_DIR / "modules" / "assemblenet"
FORBIDDEN_ROLE = re.compile(r"^roles/(owner|editor|[A-Za-z0-9_.]*(\.admin|Admin))$")


def load(directory: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(directory.rglob("*.tf")):
        with open(path, encoding="utf-8") as handle:
            docs.append(hcl2.load(handle))
    return docs


def strings(node: Any) -> Iterator[str]:
    """Every string in a parsed HCL tree, map keys included, with HCL quoting removed."""
    if isinstance(node, str):
        yield node.strip('"')
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key).strip('"')
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def forbidden_roles(docs: list[dict[str, Any]]) -> set[str]:
    return {s for s in strings(docs) if FORBIDDEN_ROLE.match(s)}


def resources(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    found = {}
    for doc in docs:
        for block in doc.get("resource", []):
            for name, body in block.get(kind, {}).items():
                found[name] = body
    return found


def first(body: dict[str, Any], key: str) -> Any:
    value = body.get(key)
    return value[0] if isinstance(value, list) and value else value


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return load(TF_DIR)


def test_no_owner_editor_or_admin_roles(docs: list[dict[str, Any]]) -> None:
    roles = {s for s in strings(docs) if s.startswith("roles/")}
    assert "roles/aiplatform.user" in roles
    assert "roles/dataflow.worker" in roles
    assert forbidden_roles(docs) == set()


@pytest.mark.parametrize(
    "role",
    ["roles/owner", "roles/editor", "roles/storage.admin", "roles/resourcemanager.projectIamAdmin"],
)
def test_broad_role_is_detected(role: str) -> None:
    doc = {"locals": [{"grants": {f'"{role}"': ["pipeline"]}}]}
    assert forbidden_roles([doc]) == {role}


def test_iam_is_additive_and_service_accounts_are_separate(docs: list[dict[str, Any]]) -> None:
    for kind in ("google_project_iam_binding", "google_project_iam_policy"):
        assert not resources(docs, kind), f"{kind} would overwrite other members' access"
    accounts = next(
        first(local, "service_accounts")
        for doc in docs
        for local in doc.get("locals", [])
        if "service_accounts" in local
    )
    assert {"pipeline", "dataflow", "trainer"} <= set(accounts)
    # roles/iam.serviceAccountUser is granted on single accounts, never project-wide.
    project_roles = {r for spec in accounts.values() for r in spec["project_roles"]}
    assert "roles/iam.serviceAccountUser" not in project_roles


def test_buckets_are_private_and_keep_what_matters(docs: list[dict[str, Any]]) -> None:
    buckets = resources(docs, "google_storage_bucket")
    assert {"data", "pipeline_root", "staging"} <= set(buckets)
    for name, body in buckets.items():
        assert first(body, "uniform_bucket_level_access") is True, name
        assert first(body, "public_access_prevention") == "enforced", name
    for name in ("data", "pipeline_root"):
        assert first(first(buckets[name], "versioning"), "enabled") is True, name
    staging_rules = buckets["staging"]["lifecycle_rule"]
    assert any(
        first(first(rule, "action"), "type") == "Delete" and "age" in first(rule, "condition")
        for rule in staging_rules
    )


def test_registries_apis_and_schedule(docs: list[dict[str, Any]]) -> None:
    repos = resources(docs, "google_artifact_registry_repository")
    assert {first(body, "format") for body in repos.values()} == {"DOCKER", "KFP"}
    apis = next(
        first(local, "apis") for doc in docs for local in doc.get("locals", []) if "apis" in local
    )
    text = " ".join(strings(apis))
    for api in ("aiplatform", "dataflow", "artifactregistry", "storage", "cloudscheduler"):
        assert f"{api}.googleapis.com" in text
    job = resources(docs, "google_cloud_scheduler_job")["retrain"]
    target = first(job, "http_target")
    assert first(target, "uri").endswith("/pipelineJobs")
    assert "oauth_token" in target


def test_every_env_uses_the_module() -> None:
    for env in ("dev", "prod"):
        env_docs = load(TF_DIR / "envs" / env)
        modules = [m for doc in env_docs for block in doc.get("module", []) for m in block.values()]
        assert modules
        assert first(modules[0], "source") == "../../modules/assemblenet"


def test_every_checkov_skip_has_a_reason() -> None:
    infra = ROOT / "infra"
    files = [*infra.rglob("*.tf"), *infra.rglob("*.Dockerfile")]
    skips = [
        line for path in files for line in path.read_text().splitlines() if "checkov:skip" in line
    ]
    assert skips, "expected the documented skips"
    for line in skips:
        assert re.search(r"checkov:skip=CKV2?_[A-Z0-9_]+:\s*\S.{10,}", line), line
