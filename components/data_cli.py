"""``assemblenet data preprocess|synth``: raw videos to TFRecords, and the synthetic dataset.

Heavy imports (Beam, TensorFlow, PyAV) happen inside the handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json


def _preprocess(args: argparse.Namespace) -> int:
    from components import preprocess

    extra = tuple(args.beam_arg or ())
    stats = preprocess.run_preprocess(preprocess.options_from_args(args, extra))
    if args.json:
        print(json.dumps(stats, sort_keys=True))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from components import synth

    out = synth.run_from_args(args)
    if args.json:
        meta = json.loads((out / "synth.json").read_text())
        print(json.dumps({"out": str(out), **meta}, sort_keys=True))
    else:
        print(out)
    return 0


def add_preprocess_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``data preprocess`` flags; unset flags take ``PreprocessOptions`` defaults."""
    parser.add_argument("--source", required=True, choices=("ucf101", "manifest", "folders"))
    parser.add_argument("--out", required=True, help="output folder (local or gs://)")
    parser.add_argument("--videos", help="videos root (ucf101, folders)")
    parser.add_argument("--splits", help="ucfTrainTestlist folder (ucf101)")
    parser.add_argument("--split", type=int, help="UCF101 split 1..3 (default 1)")
    parser.add_argument("--manifest", help="CSV with header path,label[,split] (manifest)")
    parser.add_argument(
        "--test-fraction", type=float, help="held-out fraction without a split (default 0.2)"
    )
    parser.add_argument("--num-shards", type=int, help="shards per split (default: automatic)")
    parser.add_argument("--clips-per-shard", type=int, help="automatic sharding target (50)")
    parser.add_argument("--jpeg-quality", type=int, help="JPEG quality (default 90)")
    parser.add_argument("--short-side", type=int, help="resize the short side to this")
    parser.add_argument("--fps", type=float, help="downsample to this frame rate")
    parser.add_argument("--min-frames", type=int, help="fewest frames of a usable clip (1)")
    parser.add_argument(
        "--min-frame-fraction", type=float, help="truncation threshold vs header (0.9)"
    )
    parser.add_argument(
        "--max-failure-fraction", type=float, help="fail the job above this (default 0.05)"
    )
    parser.add_argument(
        "--isolate-decoder",
        action="store_true",
        default=None,
        help="decode in a child process per worker, so a decoder crash or hang costs one clip",
    )
    parser.add_argument(
        "--decode-timeout-s", type=float, help="per-clip limit of the isolated decoder (600)"
    )
    parser.add_argument("--runner", choices=("DirectRunner", "DataflowRunner"))
    parser.add_argument("--direct-num-workers", type=int, help="0 (default): all cores")
    parser.add_argument(
        "--direct-running-mode", choices=("multi_processing", "multi_threading", "in_memory")
    )
    cloud = parser.add_argument_group("DataflowRunner")
    for name in (
        "project",
        "region",
        "temp-location",
        "staging-location",
        "machine-type",
        "sdk-container-image",
        "service-account-email",
        "network",
        "subnetwork",
        "job-name",
    ):
        cloud.add_argument(f"--{name}")
    cloud.add_argument("--max-num-workers", type=int)
    cloud.add_argument("--no-use-public-ips", action="store_true", default=None)
    parser.add_argument("--json", action="store_true", help="print stats.json to stdout")


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``data synth`` flags (defaults: ``components.synth.SynthSpec``)."""
    parser.add_argument("--out", required=True, help="output folder (UCF101 layout)")
    parser.add_argument("--classes", type=int, default=8, help="2..8 (default 8)")
    parser.add_argument("--clips-per-class", type=int, default=100)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", type=int, default=5, help="groups gNN per class")
    parser.add_argument("--test-groups", type=int, default=1, help="groups held out for test")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data preprocess`` and ``data synth``."""
    data = subparsers.add_parser("data", help="prepare video datasets (TFRecords, synthetic set)")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    preprocess = commands.add_parser(
        "preprocess",
        help="Beam job: videos (ucf101 | manifest | folders) to sharded TFRecords",
        description="Decode videos with PyAV, JPEG-encode every frame and write Model Garden "
        "SequenceExample shards, label_map.txt, stats.json and dead_letter.jsonl to --out.",
    )
    add_preprocess_arguments(preprocess)
    preprocess.add_argument(
        "--beam-arg",
        action="append",
        metavar="FLAG",
        help="extra Beam pipeline flag passed through, e.g. --beam-arg=--disk_size_gb=50",
    )
    preprocess.set_defaults(handler=_preprocess)
    synth = commands.add_parser(
        "synth",
        help="write the synthetic motion-only dataset (AVI/MPEG-4, UCF101 layout)",
        description="Generate clips whose class is defined only by motion, with split files.",
    )
    add_synth_arguments(synth)
    synth.add_argument("--json", action="store_true", help="print a JSON summary")
    synth.set_defaults(handler=_synth)
