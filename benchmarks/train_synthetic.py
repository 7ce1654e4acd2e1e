"""Benchmark: does the tiny AssembleNet learn what only motion can tell, on 2 CPU cores?

Generates the synthetic motion dataset (8 classes whose only difference is the motion: left vs
right, clockwise vs anticlockwise, expand vs contract, ...), preprocesses it with the real Beam
job, then trains and evaluates three variants with ``model/configs/synthetic.yaml``:

* ``full``: the ``tiny`` preset (RGB + optical-flow stems);
* ``rgb_only``: the same structure with the flow stems removed
  (``model.structures.without_stems(spec, "flow")``);
* ``shuffled``: the full model on a copy of the data whose frames are shuffled in time
  (every clip, train and test), so only appearance is left to learn from.

Target: ``full`` >= 90% top-1 on the synthetic test split within 10 minutes of training.
Prints a table and one JSON object (also written to ``--json-out``)::

    python benchmarks/train_synthetic.py --work /tmp/synthetic_bench
    python benchmarks/train_synthetic.py --work /tmp/b --variants full --set train.steps=300

The CPU may be shared with other work; wall times are what this machine gave at the time.

Last measured (2026-11-30, 2 CPU cores, 640 train / 160 test clips, 1,600 steps of 16 clips,
``spatial_augmentation: device`` as the config sets it; one invocation)::

    variant      params  steps  train s  clips/s test top-1
    full         276170   1600    224.4    114.1      0.988
    rgb_only     275334   1600    200.1    127.9      0.925
    shuffled     276170   1600    250.0    102.4      0.300   (chance: 0.125)

An earlier run with ``spatial_augmentation: host`` on a shared machine gave 0.994, 0.963 and
0.369.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

VARIANTS = ("full", "rgb_only", "shuffled")


def make_data(work: Path, *, clips_per_class: int, seed: int) -> Path:
    """Synthesises videos and preprocesses them into ``work/data`` (reused if present)."""
    from components.synth import generate_dataset
    from pipeline.cli import main as cli

    data = work / "data"
    if (data / "stats.json").exists():
        return data
    synth = work / "synth"
    if not synth.exists():
        generate_dataset(
            synth, num_classes=8, clips_per_class=clips_per_class, num_frames=16, size=64, seed=seed
        )
    status = cli(
        [
            "data",
            "preprocess",
            "--source",
            "ucf101",
            "--videos",
            str(synth / "videos"),
            "--splits",
            str(synth / "ucfTrainTestlist"),
            "--out",
            str(data),
        ]
    )
    if status:
        raise SystemExit(f"preprocessing failed with status {status}")
    return data


def shuffle_frames(data: Path, out: Path, *, seed: int) -> Path:
    """Copies a data directory with every clip's frames (and timestamps) permuted in time."""
    import tensorflow as tf

    from model.data import schema

    if (out / "stats.json").exists():
        return out
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for shard in sorted(data.glob(f"*{schema.TFRECORD_SUFFIX}")):
        with tf.io.TFRecordWriter(str(tmp / shard.name)) as writer:
            for record in tf.data.TFRecordDataset(str(shard)).as_numpy_iterator():
                example = tf.train.SequenceExample.FromString(record)
                lists = example.feature_lists.feature_list
                frames = list(lists[schema.IMAGE_KEY].feature)
                order = rng.permutation(len(frames))
                shuffled = [frames[i] for i in order]
                del lists[schema.IMAGE_KEY].feature[:]
                lists[schema.IMAGE_KEY].feature.extend(shuffled)
                writer.write(example.SerializeToString())
    for name in (schema.LABEL_MAP_FILE, schema.STATS_FILE):
        shutil.copy(data / name, tmp / name)
    tmp.replace(out)
    return out


def run_variant(
    name: str, data: Path, work: Path, overrides: dict[str, object]
) -> dict[str, object]:
    """Trains and evaluates one variant; returns its row of the table."""
    import keras

    from components.evaluate import evaluate
    from components.train import train
    from model import presets, structures

    model_dir = work / f"model_{name}"
    shutil.rmtree(model_dir, ignore_errors=True)
    overrides = dict(overrides)
    if name == "rgb_only":
        base = overrides.get("model.preset", "tiny")
        spec = structures.without_stems(presets.get_preset(str(base)), "flow")
        path = structures.save_structure_file(spec, work / "tiny_rgb_only.json")
        overrides["model.structure_file"] = str(path)
    keras.backend.clear_session()
    summary = train("synthetic", data_dir=str(data), model_dir=str(model_dir), overrides=overrides)
    metrics = evaluate(str(model_dir), str(data), str(work / f"eval_{name}"))
    return {
        "variant": name,
        "params": summary["num_params"],
        "steps": summary["steps"],
        "train_wall_s": summary["wall_s"],
        "train_clips_per_s": summary["clips_per_s"],
        "final_train_accuracy": summary["final_accuracy"],
        "test_top_1": metrics["top_1"],
        "test_mean_per_class": metrics["mean_per_class_accuracy"],
        "test_clips": metrics["num_clips"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path, help="working directory")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    parser.add_argument("--clips-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="config override k=v")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from components.train_cli import parse_set

    overrides: dict[str, object] = dict(parse_set(args.set))
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = make_data(args.work, clips_per_class=args.clips_per_class, seed=args.seed)
    rows = []
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose from {VARIANTS}")
        if name == "shuffled":
            source = shuffle_frames(data, args.work / "data_shuffled", seed=args.seed)
        else:
            source = data
        rows.append(run_variant(name, source, args.work, overrides))

    print(
        f"\n{'variant':10} {'params':>8} {'steps':>6} {'train s':>8} {'clips/s':>8} "
        f"{'test top-1':>10} {'per-class':>9}"
    )
    for r in rows:
        print(
            f"{r['variant']:10} {r['params']:>8} {r['steps']:>6} {r['train_wall_s']:>8.1f} "
            f"{r['train_clips_per_s']:>8.1f} {r['test_top_1']:>10.3f} "
            f"{r['test_mean_per_class']:>9.3f}"
        )
    full = next((r for r in rows if r["variant"] == "full"), None)
    result = {
        "benchmark": "train_synthetic",
        "config": "model/configs/synthetic.yaml",
        "overrides": overrides,
        "rows": rows,
        "target": ">= 0.90 test top-1 for 'full' within 600 s of training",
        "target_met": None
        if full is None
        else bool(full["test_top_1"] >= 0.9 and full["train_wall_s"] <= 600),
        "total_wall_s": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
