"""``assemblenet model ...``: inspect presets and export learned structures."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)


def _summary(args: argparse.Namespace) -> int:
    # Heavy imports stay inside handlers so `assemblenet --help` is fast.
    from model.assemblenet import build_model, count_params

    model = build_model(
        args.preset, num_classes=args.num_classes, num_frames=args.frames, image_size=args.size
    )
    counts = count_params(model)
    shape = list(model.output.shape)
    if args.json:
        print(json.dumps({**counts, "output_shape": shape}))
    else:
        print(f"preset:          {args.preset}")
        print(f"input:           [None, {args.frames}, {args.size}, {args.size}, 3]")
        print(f"output shape:    {shape}")
        print(f"total params:    {counts['total']:,}")
        print(f"trainable:       {counts['trainable']:,}")
        print(f"non-trainable:   {counts['non_trainable']:,}")
    return 0


def _export_structure(args: argparse.Namespace) -> int:
    from pathlib import Path

    import keras

    import model.assemblenet  # noqa: F401  (registers the custom layers for loading)
    from model.errors import ConfigError
    from model.search import learned_structure
    from model.structures import save_structure_file

    path = Path(args.model)
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    try:
        loaded = keras.models.load_model(path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load model {path}: {error}") from error
    spec = learned_structure(loaded, prune_below=args.prune_below)
    out = save_structure_file(spec, args.out)
    log.info("wrote learned structure to %s", out)
    print(json.dumps({"out": str(out), "nodes": len(spec.nodes)}))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``model summary`` and ``model export-structure``."""
    group = subparsers.add_parser("model", help="AssembleNet model presets and structures")
    sub = group.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)

    summary = sub.add_parser(
        "summary",
        help="parameter counts and output shape of a preset (symbolic build, no forward pass)",
    )
    summary.add_argument("--preset", required=True, help="preset name, e.g. assemblenet50")
    summary.add_argument("--num-classes", type=int, default=101, help="classes (default 101)")
    summary.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    summary.add_argument("--size", type=int, default=224, help="frame size in pixels (default 224)")
    summary.add_argument("--json", action="store_true", help="print one JSON line")
    summary.set_defaults(handler=_summary)

    export = sub.add_parser(
        "export-structure",
        help="write a trained model's learned edge weights as a structure file",
    )
    export.add_argument("--model", required=True, help="trained model (.keras)")
    export.add_argument("--out", required=True, help="structure JSON file to write")
    export.add_argument(
        "--prune-below",
        type=float,
        default=None,
        help="drop edges whose learned weight is below this value (keeps >= 1 input per block)",
    )
    export.set_defaults(handler=_export_structure)
