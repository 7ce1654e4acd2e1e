"""The container images, the project's dependency groups, and the compiled pipeline stay in step.

Pure-python reads of infra/docker/*.Dockerfile, pyproject.toml, uv.lock, pipeline.yaml,
infra/cloudbuild.yaml and the root .dockerignore (hadolint/checkov run in `make infra-check`).
Each rule is a small function; besides checking the real files, each is shown to fire on a
deliberately broken input, so none of these tests can pass vacuously.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from pipeline.images import IMAGE_NAMES

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "infra" / "docker"
# Images the pipeline may use that this project does not build (Google's prebuilt components).
THIRD_PARTY_IMAGE_PREFIXES = ("gcr.io/ml-pipeline/google-cloud-pipeline-components:",)
# Which dependency groups each image installs. The trainer runs on Cloud TPU, so it installs the
# TPU build of TensorFlow (`tpu`) rather than the CPU build in `train`; every image that runs KFP
# Python components also needs kfp, which the `pipeline` group brings.
EXPECTED_EXTRAS = {
    "beam": {"beam", "pipeline"},
    "trainer": {"tpu", "pipeline"},
    "pipeline": {"pipeline"},
}


@dataclasses.dataclass(frozen=True)
class Dockerfile:
    """The parts of a Dockerfile these tests reason about."""

    path: Path
    bases: tuple[str, ...]  # FROM image references (stage aliases removed)
    extras: frozenset[str]  # every `--extra NAME` in the file
    args: dict[str, str]  # ARG defaults
    final_user: str | None  # last USER instruction of the final stage
    copy_sources: frozenset[str]  # build-context sources of COPY (not --from)
    text: str


def parse_dockerfile(path: Path, text: str | None = None) -> Dockerfile:
    """Reads a Dockerfile, joining continuation lines, into a :class:`Dockerfile`."""
    text = path.read_text() if text is None else text
    logical = re.sub(r"\\\n", " ", text)
    bases: list[str] = []
    args: dict[str, str] = {}
    copies: set[str] = set()
    final_user: str | None = None
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            bases.append(rest.split()[0])
            final_user = None  # USER does not carry over into a new stage
        elif instruction == "ARG":
            name, _, default = rest.partition("=")
            if default:  # a bare `ARG NAME` inside a stage re-imports the global default
                args[name.strip()] = default.strip()
        elif instruction == "USER":
            final_user = rest.strip()
        elif instruction == "COPY" and "--from=" not in rest:
            copies.update(part.rstrip("/") for part in rest.split()[:-1])
    extras = frozenset(re.findall(r"--extra[ =]([A-Za-z0-9_-]+)", logical))
    return Dockerfile(path, tuple(bases), extras, args, final_user, frozenset(copies), text)


def dockerfiles() -> dict[str, Dockerfile]:
    return {p.name.removesuffix(".Dockerfile"): parse_dockerfile(p) for p in DOCKER_DIR.glob("*")}


def defined_extras() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["optional-dependencies"])


def undefined_extras(dockerfile: Dockerfile, defined: set[str]) -> set[str]:
    """Dependency groups an image installs that pyproject does not define."""
    return set(dockerfile.extras) - defined


def image_refs(pipeline_text: str) -> set[str]:
    """Every container image a compiled pipeline names: task images, custom-job worker images
    (``image_uri``) and the Dataflow SDK container passed as a job argument."""
    pattern = (
        r"(?:\bimage|image_uri|imageUri|sdk_container_image)[\"']?\s*[:=]\s*[\"']?([^\s\"',}\]]+)"
    )
    return set(re.findall(pattern, pipeline_text))


def unbuilt_images(refs: set[str], built: set[str]) -> set[str]:
    """References that are neither third-party nor ``<registry>/<name>:<tag>`` with a built name."""
    bad = set()
    for ref in refs:
        if ref.startswith(THIRD_PARTY_IMAGE_PREFIXES):
            continue
        name = ref.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
        if name not in built:
            bad.add(ref)
    return bad


def kfp_executor_images(pipeline_text: str) -> set[str]:
    """Image names (``assemblenet-...``) of executors that run ``kfp.dsl.executor_main``."""
    spec = yaml.safe_load(pipeline_text)
    names = set()
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor.get("container", {})
        if "kfp.dsl.executor_main" in " ".join(container.get("command", [])):
            names.add(container["image"].rsplit("/", 1)[-1].split(":", 1)[0])
    return names


def images_without_kfp(names: set[str], images: dict[str, Dockerfile]) -> set[str]:
    """Of ``names``, the images whose installed groups do not bring the kfp SDK."""
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    by_name = {IMAGE_NAMES[key]: dockerfile for key, dockerfile in images.items()}
    missing = set()
    for name in names:
        requirements = list(groups["dependencies"])
        for extra in by_name[name].extras:
            requirements += groups["optional-dependencies"].get(extra, [])
        if not any(re.match(r"kfp\b(?!-)", req) for req in requirements):
            missing.add(name)
    return missing


def built_image_names() -> set[str]:
    return {IMAGE_NAMES[key] for key in dockerfiles() if key in IMAGE_NAMES}


# ------------------------------------------------------------------------------- images ⇄ groups


def test_one_dockerfile_per_image_key() -> None:
    assert set(dockerfiles()) == set(IMAGE_NAMES)


@pytest.mark.parametrize("key", sorted(IMAGE_NAMES))
def test_image_installs_its_defined_group(key: str) -> None:
    dockerfile = dockerfiles()[key]
    assert dockerfile.extras == EXPECTED_EXTRAS[key]
    assert not undefined_extras(dockerfile, defined_extras())


def test_undefined_group_is_detected() -> None:
    broken = dockerfiles()["pipeline"].text.replace("--extra pipeline", "--extra pipelines")
    parsed = parse_dockerfile(DOCKER_DIR / "pipeline.Dockerfile", broken)
    assert undefined_extras(parsed, defined_extras()) == {"pipelines"}


@pytest.mark.parametrize("key", sorted(IMAGE_NAMES))
def test_image_is_pinned_non_root_and_reproducible(key: str) -> None:
    dockerfile = dockerfiles()[key]
    for base in dockerfile.bases:
        if base in {"uv", "build"}:  # earlier stage aliases
            continue
        assert ":" in base or "@sha256:" in base, f"{base} is not pinned"
        assert not base.endswith(":latest"), base
    assert dockerfile.final_user is not None, "final stage must set USER"
    assert dockerfile.final_user.split(":")[0] not in {"root", "0"}
    # Installs come from uv.lock: `uv sync --frozen`, or a hash-checked export of it.
    assert "--frozen" in dockerfile.text
    assert "uv sync --frozen" in dockerfile.text or "--require-hashes" in dockerfile.text


@pytest.mark.parametrize("key", sorted(IMAGE_NAMES))
def test_image_carries_no_credentials(key: str) -> None:
    dockerfile = dockerfiles()[key]
    secret = re.compile(r"^\s*(ENV|ARG)\s+\S*(KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)", re.I | re.M)
    assert not secret.search(dockerfile.text)
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in dockerfile.text
    assert not any(src.endswith(".json") for src in dockerfile.copy_sources)


def test_beam_image_is_the_beam_sdk_container() -> None:
    beam = dockerfiles()["beam"]
    assert beam.bases[-1] == "apache/beam_python3.11_sdk:2.77.0"
    # Dataflow needs the SDK harness boot entrypoint of the base image: never override it.
    assert "ENTRYPOINT" not in beam.text.split("FROM apache/beam_python3.11_sdk:2.77.0")[-1]


# ------------------------------------------------------------------------ trainer TF ⇄ libtpu


def tpu_pins() -> dict[str, str]:
    """``==`` pins of the `tpu` group, by distribution name."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = {}
    for requirement in pyproject["project"]["optional-dependencies"]["tpu"]:
        match = re.match(r"([A-Za-z0-9_.-]+)==([^;\s]+)", requirement)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def locked_versions(names: set[str]) -> dict[str, set[str]]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    found: dict[str, set[str]] = {name: set() for name in names}
    for package in lock["package"]:
        if package["name"] in found:
            found[package["name"]].add(package["version"])
    return found


def trainer_version_mismatches(
    image_args: dict[str, str], pins: dict[str, str], locked: dict[str, set[str]]
) -> list[str]:
    """Disagreements between the trainer image, pyproject's `tpu` pins and uv.lock."""
    problems = []
    for dist, arg in (("tensorflow-tpu", "TENSORFLOW_TPU_VERSION"), ("libtpu", "LIBTPU_VERSION")):
        if image_args.get(arg) != pins.get(dist):
            problems.append(
                f"image {arg}={image_args.get(arg)} but pyproject pins {pins.get(dist)}"
            )
        if locked.get(dist) != {pins.get(dist)}:
            problems.append(
                f"uv.lock has {dist} {locked.get(dist)}, pyproject pins {pins.get(dist)}"
            )
    return problems


def test_trainer_tensorflow_and_libtpu_match_the_pins() -> None:
    pins = tpu_pins()
    assert set(pins) == {"tensorflow-tpu", "libtpu"}
    image = dockerfiles()["trainer"]
    locked = locked_versions(set(pins))
    assert trainer_version_mismatches(image.args, pins, locked) == []
    # The build re-checks the installed versions against the same ARGs.
    assert "m.version('tensorflow-tpu')" in image.text
    assert "m.version('libtpu')" in image.text


def test_trainer_version_drift_is_detected() -> None:
    pins = tpu_pins()
    image = dockerfiles()["trainer"]
    locked = locked_versions(set(pins))
    drifted = {**image.args, "LIBTPU_VERSION": "0.0.99"}
    assert trainer_version_mismatches(drifted, pins, locked)
    assert trainer_version_mismatches(image.args, pins, {**locked, "tensorflow-tpu": {"2.21.0"}})


def test_tpu_group_conflicts_with_cpu_tensorflow() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    conflicts = pyproject["tool"]["uv"]["conflicts"]
    assert [{"extra": "train"}, {"extra": "tpu"}] in conflicts
    train = " ".join(pyproject["project"]["optional-dependencies"]["train"])
    assert "tensorflow-cpu" in train
    assert "tensorflow-tpu" not in train


# ------------------------------------------------------------------- pipeline ⇄ built images


def test_pipeline_references_only_built_images() -> None:
    path = ROOT / "pipeline.yaml"
    if path.exists():
        refs = image_refs(path.read_text())
        ours = {r for r in refs if not r.startswith(THIRD_PARTY_IMAGE_PREFIXES)}
        # The compiled pipeline uses every image we build, and only those.
        assert {r.rsplit("/", 1)[-1].split(":")[0] for r in ours} == set(IMAGE_NAMES.values())
    else:  # before the first compile the contract is IMAGE_NAMES itself
        refs = {f"registry.example/p/r/{name}:abc" for name in IMAGE_NAMES.values()}
    assert unbuilt_images(refs, built_image_names()) == set()


def test_images_running_kfp_components_install_kfp() -> None:
    path = ROOT / "pipeline.yaml"
    # pipeline/dag.py builds every step as a KFP Python component without a run-time pip
    # install, so before the first compile every project image is held to it.
    names = kfp_executor_images(path.read_text()) if path.exists() else set(IMAGE_NAMES.values())
    assert names, "expected KFP Python components in the compiled pipeline"
    images = dockerfiles()
    assert images_without_kfp(names, images) == set()
    # Without the `pipeline` group the trainer image would lack the KFP executor.
    trainer = images["trainer"]
    stripped = dataclasses.replace(trainer, extras=trainer.extras - {"pipeline"})
    assert images_without_kfp({"assemblenet-trainer"}, {**images, "trainer": stripped}) == {
        "assemblenet-trainer"
    }


def test_unbuilt_pipeline_image_is_detected() -> None:
    text = (
        "image: us-central1-docker.pkg.dev/p/r/assemblenet-trainer:abc\n"
        '"sdk_container_image": "us-central1-docker.pkg.dev/p/r/assemblenet-gpu:abc"\n'
        "image: gcr.io/ml-pipeline/google-cloud-pipeline-components:2.22.0\n"
    )
    refs = image_refs(text)
    assert len(refs) == 3
    assert unbuilt_images(refs, built_image_names()) == {
        "us-central1-docker.pkg.dev/p/r/assemblenet-gpu:abc"
    }


# ---------------------------------------------------------------------- build context, CI


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_is_an_allowlist_of_what_images_copy() -> None:
    patterns = dockerignore_patterns()
    assert patterns[0] == "*", "start by excluding everything"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set().union(*(d.copy_sources for d in dockerfiles().values()))
    assert copied <= allowed, f"COPY sources excluded from the context: {copied - allowed}"
    for private in (".venv", ".tools", "work", "local_outputs", "data", ".git", "tests"):
        assert private not in allowed


def test_cloudbuild_builds_every_image_by_commit_and_compiles_against_them() -> None:
    from pipeline.cli import build_parser

    build = yaml.safe_load((ROOT / "infra" / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in build["steps"]}
    for key, name in IMAGE_NAMES.items():
        args = steps[f"build-{key}"]["args"]
        assert f"--file=infra/docker/{key}.Dockerfile" in args
        assert f"--tag=${{_REGISTRY}}/{name}:${{COMMIT_SHA}}" in args
        assert f"${{_REGISTRY}}/{name}:${{COMMIT_SHA}}" in build["images"]
    compile_args = steps["compile"]["args"]
    assert "--image-tag=${COMMIT_SHA}" in compile_args
    assert "--image-registry=${_REGISTRY}" in compile_args
    assert "push-images" in steps["compile"]["waitFor"]
    # The real CLI accepts exactly these flags (substitutions filled with sample values).
    parser = build_parser()
    for step_id in ("compile", "upload-template"):
        argv = [
            re.sub(r"\$\{[A-Z_]+\}", "x1", arg).replace(
                "--accelerator-count=x1", "--accelerator-count=8"
            )
            for arg in steps[step_id]["args"]
        ]
        parser.parse_args(argv)
