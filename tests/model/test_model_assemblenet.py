"""AssembleNet models: parity with the reference, every preset runs, training, saving, search."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from model import cli
from model.assemblenet import build_model, count_params
from model.errors import ConfigError, UserError
from model.presets import PRESETS
from model.search import learned_structure
from model.structures import load_structure_file, save_structure_file

TINY = sorted(name for name in PRESETS if name.startswith("tiny"))


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser()
    cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    return capsys.readouterr().out


def _inputs(model: keras.Model, batch: int, seed: int = 0) -> object:
    """Random inputs for every model input, in [0, 1]."""
    rng = np.random.default_rng(seed)
    arrays = {
        t.name.split(":")[0]: rng.random((batch, *t.shape[1:])).astype("float32")
        for t in model.inputs
    }
    return arrays["image"] if len(arrays) == 1 else arrays


def test_assemblenet50_parity_with_reference(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run_cli(
        [
            "model",
            "summary",
            "--preset",
            "assemblenet50",
            "--num-classes",
            "101",
            "--frames",
            "8",
            "--size",
            "224",
            "--json",
        ],
        capsys,
    )
    assert json.loads(out) == {
        "total": 36_872_913,
        "trainable": 36_786_213,
        "non_trainable": 86_700,
        "output_shape": [None, 101],
    }


def test_assemblenet50_per_node_totals() -> None:
    model = build_model("assemblenet50", num_classes=101, num_frames=8, image_size=224)
    per_node: dict[int, int] = {}
    for layer in model.layers:
        if layer.name.startswith("node"):
            node = int(layer.name[4:].split("_")[0])
            per_node[node] = per_node.get(node, 0) + layer.count_params()
    expected = {0: 10_080, 1: 10_080, 2: 3_264, 3: 3_264, 4: 104_576, 5: 104_576,
                6: 104_580, 7: 104_578, 8: 593_925, 9: 593_924, 10: 593_923, 11: 593_922,
                12: 8_396_804, 13: 8_364_034, 14: 17_084_418}  # fmt: skip
    assert per_node == expected
    assert model.get_layer("representation_flow").count_params() == 16
    assert model.get_layer("classifier").count_params() == 2049 * 101
    assert sum(expected.values()) + 16 == 36_665_964


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"learnable_edges": True}, (36_872_913, 36_786_241, 86_672)),
        ({"combine": "concat"}, (40_868_533, 40_781_861, 86_672)),
    ],
)
def test_assemblenet50_variants(overrides: dict, expected: tuple[int, int, int]) -> None:
    model = build_model("assemblenet50", num_classes=101, num_frames=8, image_size=224, **overrides)
    counts = count_params(model)
    assert (counts["total"], counts["trainable"], counts["non_trainable"]) == expected


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_runs_forward(name: str) -> None:
    frames = 4 if name.startswith("tiny") else 2  # the full-size presets are heavy even at 32 px
    model = build_model(name, num_classes=5, num_frames=frames, image_size=32)
    logits = model(_inputs(model, batch=2), training=False)
    assert tuple(logits.shape) == (2, 5)
    assert logits.dtype == "float32"
    assert np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("name", TINY)
def test_tiny_presets_learn_and_round_trip(name: str, tmp_path: Path) -> None:
    model = build_model(name, num_classes=4, num_frames=4, image_size=32, bn_momentum=0.9)
    params = count_params(model)["total"]
    assert 50_000 < params < 700_000, params
    x = _inputs(model, batch=4, seed=1)
    y = tf.one_hot([0, 1, 2, 3], 4)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(1e-2)
    losses = []
    for _ in range(4):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None for g in grads)
        optimizer.apply(grads, model.trainable_variables)
        losses.append(float(loss))
    assert losses[-1] < losses[0] - 0.1, losses

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        np.asarray(model(x, training=False)), np.asarray(loaded(x, training=False))
    )
    assert loaded.assemblenet_spec == model.assemblenet_spec
    assert count_params(loaded) == count_params(model)


def test_tiny_is_float32_logits_under_mixed_bfloat16() -> None:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model("tiny_plus", num_classes=3, num_frames=4, image_size=32)
        logits = model(_inputs(model, batch=1), training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert logits.dtype == "float32"
    assert model.get_layer("node3_u0_b").compute_dtype == "bfloat16"


@pytest.mark.slow  # tracing the serving function takes ~30 s on 2 shared cores
def test_export_saved_model(tmp_path: Path) -> None:
    model = build_model("tiny", num_classes=3, num_frames=4, image_size=32)
    x = _inputs(model, batch=2)
    model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(
        reloaded.serve(tf.constant(x)).numpy(), np.asarray(model(x)), rtol=1e-4, atol=1e-6
    )


def test_connection_search_reads_prunes_and_rebuilds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_model("tiny", num_classes=3, num_frames=4, image_size=32, learnable_edges=True)
    fusion = model.get_layer("node4_fusion")  # inputs (0, 1, 2)
    assert fusion.edge_logits.trainable
    fusion.edge_logits.assign([math.log(0.9 / 0.1), 0.0, math.log(0.1 / 0.9)])  # 0.9, 0.5, 0.1
    spec = learned_structure(model)
    np.testing.assert_allclose(spec.nodes[4].edge_weights, [0.9, 0.5, 0.1], rtol=1e-5)
    pruned = learned_structure(model, prune_below=0.3)
    assert pruned.nodes[4].inputs == (0, 1)
    np.testing.assert_allclose(pruned.nodes[4].edge_weights, [0.9, 0.5], rtol=1e-5)
    # Every other untrained edge sits near 0.5: a 0.6 threshold keeps one input per block.
    strict = learned_structure(model, prune_below=0.6)
    assert strict.nodes[4].inputs == (0,)
    assert strict.nodes[4].edge_weights == ()
    assert all(len(b.inputs) == 1 for _, b in strict.blocks if _ != 4)

    path = save_structure_file(pruned, tmp_path / "learned.json")
    rebuilt = build_model(load_structure_file(path), num_classes=3, num_frames=4, image_size=32)
    logits = rebuilt.get_layer("node4_fusion").edge_logits
    assert not logits.trainable
    np.testing.assert_allclose(keras.ops.sigmoid(logits), [0.9, 0.5], rtol=1e-5)
    assert rebuilt(_inputs(rebuilt, batch=1)).shape == (1, 3)

    model.save(tmp_path / "searched.keras")
    out_file = tmp_path / "cli.json"
    _run_cli(
        [
            "model",
            "export-structure",
            "--model",
            str(tmp_path / "searched.keras"),
            "--out",
            str(out_file),
            "--prune-below",
            "0.3",
        ],
        capsys,
    )
    assert load_structure_file(out_file) == pruned


def test_bad_configs_raise_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="valid presets"):
        build_model("resnet50", num_classes=3, num_frames=4, image_size=32)
    with pytest.raises(ConfigError, match="unknown AssembleNet spec field"):
        build_model("tiny", num_classes=3, num_frames=4, image_size=32, momentum=0.9)
    with pytest.raises(ConfigError, match="attention_mode"):
        build_model("tiny", num_classes=3, num_frames=4, image_size=32, attention_mode="None")
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("tiny", num_classes=0, num_frames=4, image_size=32)
    with pytest.raises(ConfigError, match="num_frames >= 2"):
        build_model("tiny", num_classes=3, num_frames=1, image_size=32)
    with pytest.raises(UserError, match="model file not found"):
        _run_cli(
            ["model", "export-structure", "--model", "/nonexistent.keras", "--out", "x"], capsys
        )
