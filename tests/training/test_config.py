"""The strict experiment-config loader and the shipped configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from model.config import (
    CONFIG_DIR,
    ExperimentConfig,
    dump_config,
    load_config,
    resolve_data_dtype,
    resolve_device_canvas,
    resolve_precision,
    validate_for_replicas,
)
from model.errors import ConfigError, UserError

SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


def test_every_required_config_ships() -> None:
    names = {p.stem for p in SHIPPED}
    assert {
        "synthetic",
        "ucf101_assemblenet50",
        "ucf101_assemblenet101",
        "ucf101_assemblenet_plus50",
        "kinetics600_assemblenet50",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_loads_and_states_how_to_run_it(path: Path) -> None:
    cfg = load_config(path)
    header = path.read_text().split("\nmodel:")[0]
    for word in ("Run:", "assemblenet train", "Hardware:", "Expected:"):
        assert word in header, f"{path.name} header lacks {word!r}"
    # Round trip: the resolved config written next to a model reads back equal.
    tmp = path.parent / "never-written"
    assert not tmp.exists()
    import yaml

    from model.config import from_dict

    assert from_dict(yaml.safe_load(dump_config(cfg))) == cfg


def test_reference_values_of_the_ucf101_tpu_config() -> None:
    cfg = load_config("ucf101_assemblenet50")
    assert (cfg.train.batch_size, cfg.train.steps, cfg.train.learning_rate) == (32, 90000, 0.008)
    assert (cfg.train.schedule, cfg.train.decay_steps, cfg.train.decay_rate) == (
        "exponential",
        1024,
        0.96,
    )
    assert cfg.train.warmup_steps == 50
    assert cfg.model.max_pool_predictions is True
    assert (cfg.data.num_frames, cfg.data.image_size, cfg.data.temporal_stride) == (32, 224, 2)
    # Sized for a v3-8: the global batch splits over 8 replicas, bfloat16 on TPU.
    validate_for_replicas(cfg, 8, on_tpu=True)
    assert resolve_precision(cfg, on_tpu=True) == "mixed_bfloat16"
    assert resolve_data_dtype(cfg, on_tpu=True) == "bfloat16"
    assert resolve_precision(cfg, on_tpu=False) == "float32"
    assert resolve_data_dtype(cfg, on_tpu=False) == "float32"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("train:\n  stepz: 3\n", "'train.stepz'"),
        ("trian:\n  steps: 3\n", "'trian'"),
        ("train:\n  steps: '3'\n", "'train.steps' must be int"),
        ("train:\n  batch_size: true\n", "'train.batch_size' must be int"),
        ("train:\n  nesterov: 1\n", "'train.nesterov' must be bool"),
        ("train:\n  schedule: linear\n", "'train.schedule'"),
        ("train:\n  steps: 0\n", "'train.steps' must be > 0"),
        ("train:\n  steps: 10\n  warmup_steps: 10\n", "'train.warmup_steps'"),
        ("train:\n  momentum: 1.5\n", "'train.momentum'"),
        ("train:\n  steps: 30\n  steps_per_execution: 4\n", "'train.steps'=30"),
        ("train:\n  checkpoint_every: 5\n  steps_per_execution: 2\n", "'train.checkpoint_every'"),
        ("eval:\n  num_test_crops: 2\n", "'eval.num_test_crops'"),
        ("data:\n  num_classes: -1\n", "'data.num_classes' must be > 0"),
        ("model: [1, 2]\n", "'model' must be a mapping"),
        ("model:\n  bn_momentum: 1.0\n", "'model.bn_momentum'"),
        ("train: {steps: 3\n", "not valid YAML"),
        ("data:\n  spatial_augmentation: gpu\n", "'data.spatial_augmentation'"),
        ("data:\n  spatial_augmentation: device\n", "'data.frame_canvas_height'"),
        ("data:\n  spatial_augmentation: auto\n", "'data.spatial_augmentation'=auto needs"),
    ],
)
def test_bad_config_names_key_and_file(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert needle in str(error.value)
    assert str(path) in str(error.value)
    assert isinstance(error.value, UserError)


def test_dotted_overrides_are_typed_and_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, "train:\n  steps: 100\n")
    cfg = load_config(
        path, {"train.steps": "20", "model.learnable_edges": "true", "train.learning_rate": 0.5}
    )
    assert (cfg.train.steps, cfg.model.learnable_edges, cfg.train.learning_rate) == (20, True, 0.5)
    assert load_config(path, {"model.preset": "123"}).model.preset == "123"  # str stays str
    with pytest.raises(ConfigError, match=r"train.stepz"):
        load_config(path, {"train.stepz": "1"})
    with pytest.raises(ConfigError, match=r"section.key"):
        load_config(path, {"steps": "1"})
    with pytest.raises(ConfigError, match=r"'train.steps' must be int"):
        load_config(path, {"train.steps": "ten"})


def test_missing_file_and_shipped_names() -> None:
    with pytest.raises(ConfigError, match=r"not found.*synthetic"):
        load_config("no_such_config")
    assert load_config("synthetic") == load_config(CONFIG_DIR / "synthetic.yaml")


def test_configs_are_frozen_and_slotted() -> None:
    cfg = ExperimentConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.steps = 3  # type: ignore[misc]
    assert not hasattr(cfg.train, "__dict__")
    assert cfg.model_overrides() == {}
    cfg2 = load_config("synthetic", {"model.attention_mode": "none", "model.combine": "concat"})
    assert cfg2.model_overrides()["attention_mode"] is None
    assert cfg2.model_overrides()["combine"] == "concat"


def test_device_validation_without_a_tpu() -> None:
    cfg = load_config("synthetic", {"train.batch_size": 12})
    validate_for_replicas(cfg, 4, on_tpu=True)
    with pytest.raises(ConfigError, match=r"divisible by the 8 replicas"):
        validate_for_replicas(cfg, 8, on_tpu=True)
    fp16 = load_config("synthetic", {"train.mixed_precision": "mixed_float16"})
    with pytest.raises(ConfigError, match=r"mixed_float16"):
        validate_for_replicas(fp16, 1, on_tpu=True)
    validate_for_replicas(fp16, 1, on_tpu=False)
    bf16_input = load_config("synthetic", {"data.dtype": "bfloat16"})
    with pytest.raises(ConfigError, match=r"data.dtype"):
        validate_for_replicas(bf16_input, 1, on_tpu=False)
    # Steps per loop: the TPU host loop length must tile the run and its checkpoints.
    with pytest.raises(ConfigError, match=r"steps_per_execution"):
        load_config("ucf101_assemblenet50", {"train.steps_per_execution": 288})


def test_spatial_augmentation_side_follows_the_devices() -> None:
    canvas = {"data.frame_canvas_height": 240, "data.frame_canvas_width": 320}
    auto = load_config("ucf101_assemblenet50")
    assert auto.data.spatial_augmentation == "auto"
    assert resolve_device_canvas(auto, accelerated=True) == (240, 320)
    assert resolve_device_canvas(auto, accelerated=False) is None  # the CPU resizes faster
    forced = load_config("synthetic", {"data.spatial_augmentation": "device", **canvas})
    assert resolve_device_canvas(forced, accelerated=False) == (240, 320)
    host = load_config("synthetic", {"data.spatial_augmentation": "host", **canvas})
    assert resolve_device_canvas(host, accelerated=True) is None
