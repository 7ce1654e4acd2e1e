"""``assemblenet train`` and ``assemblenet evaluate``.

Examples::

    assemblenet train --config synthetic --data work/data --model-dir work/model
    assemblenet train --config model/configs/ucf101_assemblenet50.yaml \\
        --data gs://BUCKET/ucf101 --model-dir gs://BUCKET/runs/asn50 --set train.steps=1000
    assemblenet evaluate --model-dir work/model --data work/data --out work/eval --clips 4 --json
"""

from __future__ import annotations

import argparse
import json

from model.errors import ConfigError


def parse_set(pairs: list[str] | None) -> dict[str, str]:
    """``["train.steps=10", ...]`` -> ``{"train.steps": "10"}`` (values typed by the loader)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects section.key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _train(args: argparse.Namespace) -> int:
    from components.train import train
    from model.config import load_config

    # Parse the config before TensorFlow is imported, so typos fail in a fraction of a second.
    overrides = parse_set(args.set)
    load_config(args.config, overrides)
    summary = train(
        args.config,
        data_dir=args.data,
        model_dir=args.model_dir,
        overrides=overrides,
        tpu=args.tpu,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"trained {summary['steps']} steps in {summary['wall_s']:.1f}s "
            f"({summary['clips_per_s']:.1f} clips/s); model directory {summary['model_dir']}"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from components.evaluate import evaluate

    result = evaluate(
        args.model_dir,
        args.data,
        args.out,
        split=args.split,
        num_test_clips=args.clips,
        num_test_crops=args.crops,
        batch_size=args.batch_size,
    )
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "confusion_matrix"}, indent=2))
    else:
        print(
            f"{result['split']}: top-1 {result['top_1']:.4f}  top-5 {result['top_5']:.4f}  "
            f"mean per-class {result['mean_per_class_accuracy']:.4f}  "
            f"({result['num_clips']} videos); reports in {args.out}"
        )
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``train`` and ``evaluate`` to the ``assemblenet`` command."""
    train = subparsers.add_parser(
        "train",
        help="train an AssembleNet experiment (resumes from MODEL_DIR/checkpoints)",
        description="Train on preprocessed TFRecords on TPU, GPUs or CPU; checkpoints every "
        "train.checkpoint_every steps so a restarted job resumes where it stopped.",
    )
    train.add_argument(
        "--config", required=True, help="experiment YAML, or a shipped name such as 'synthetic'"
    )
    train.add_argument("--data", required=True, help="preprocessed data directory (or gs://)")
    train.add_argument("--model-dir", required=True, help="output model directory (or gs://)")
    train.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config value (repeatable), e.g. --set train.steps=10",
    )
    train.add_argument("--tpu", default=None, help="TPU address (default $TPU_NAME or local)")
    train.add_argument("--json", action="store_true", help="print the training summary as JSON")
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="multi-view evaluation of a model directory on a data split",
        description="Writes OUT/metrics.json, OUT/confusion_matrix.png and OUT/report.html.",
    )
    evaluate.add_argument("--model-dir", required=True, help="model directory from `train`")
    evaluate.add_argument("--data", required=True, help="preprocessed data directory")
    evaluate.add_argument("--out", required=True, help="directory for the reports")
    evaluate.add_argument("--split", default="test", help="split to evaluate (default: test)")
    evaluate.add_argument("--clips", type=int, default=None, help="clips per video")
    evaluate.add_argument(
        "--crops", type=int, choices=(1, 3), default=None, help="crops per clip (1 or 3)"
    )
    evaluate.add_argument("--batch-size", type=int, default=None, help="videos per batch")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.set_defaults(handler=_evaluate)
