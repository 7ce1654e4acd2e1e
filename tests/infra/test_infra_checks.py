"""infra/checks.py reports real problems (the clean run on infra/ itself is `make infra-check`).

infra/ is never imported by the packages, so the script is loaded from its path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("infra_checks", ROOT / "infra" / "checks.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


BAD_DOCKERFILE = """FROM ubuntu:latest
RUN apt-get update && apt-get install -y curl
COPY . /app
"""

INSECURE_TF = """resource "google_storage_bucket" "open" {
  name     = "some-open-bucket"
  location = "US"
}

resource "google_storage_bucket" "skipped" {
  #checkov:skip=CKV_GCP_62
  name                        = "some-skipped-bucket"
  location                    = "US"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
}
"""


def test_hadolint_flags_a_bad_dockerfile(checks: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "bad.Dockerfile").write_text(BAD_DOCKERFILE)
    result = checks.run_hadolint(checks.find_dockerfiles(tmp_path))
    assert not result.ok
    joined = "\n".join(result.problems)
    assert "DL3007" in joined  # FROM ...:latest
    assert "DL3008" in joined  # unpinned apt packages


def test_hadolint_passes_the_project_images(checks: ModuleType) -> None:
    dockerfiles = checks.find_dockerfiles(ROOT / "infra")
    assert len(dockerfiles) == 3
    result = checks.run_hadolint(dockerfiles)
    assert result.ok, result.problems


def test_hcl2_flags_a_syntax_error(checks: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "good.tf").write_text('variable "x" {\n  type = string\n}\n')
    (tmp_path / "broken.tf").write_text('resource "google_storage_bucket" "b" {\n  name = \n')
    result = checks.parse_terraform(checks.find_terraform(tmp_path))
    assert [p.split(":")[0] for p in result.problems] == [str(tmp_path / "broken.tf")]
    assert checks.parse_terraform([]).problems == ("no Terraform files found",)


def test_main_exit_status(checks: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "bad.Dockerfile").write_text(BAD_DOCKERFILE)
    (tmp_path / "main.tf").write_text('variable "x" {}\n')
    assert checks.main(["--root", str(tmp_path), "--skip-checkov"]) == 1
    (tmp_path / "bad.Dockerfile").write_text(
        "FROM python:3.11.14-slim-bookworm\nUSER 10001:10001\nHEALTHCHECK NONE\n"
    )
    assert checks.main(["--root", str(tmp_path), "--skip-checkov"]) == 0


@pytest.mark.slow
def test_checkov_flags_failures_and_reasonless_skips(checks: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(INSECURE_TF)
    (tmp_path / "app.Dockerfile").write_text(
        "FROM python:3.11.14-slim-bookworm\nUSER 10001:10001\nHEALTHCHECK NONE\n"
    )
    result = checks.run_checkov(tmp_path)
    joined = "\n".join(result.problems)
    assert "CKV_GCP_29" in joined  # uniform bucket-level access missing on "open"
    assert "CKV_GCP_62 skipped without a reason" in joined
