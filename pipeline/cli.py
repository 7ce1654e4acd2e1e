"""The ``assemblenet`` command: one entry point, one sub-command group per stage.

Each group lives next to the code it drives and exposes ``add_commands(subparsers)``; this module
only wires them together. Group modules keep heavy imports (TensorFlow, Beam, kfp, the cloud
SDKs) inside their handlers, so ``assemblenet --help`` is fast and every image can run the
commands its dependency group supports.

Handlers receive the parsed ``argparse.Namespace`` and return an exit status (or ``None`` for 0).
A :class:`model.errors.UserError` becomes a one-line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from model.errors import UserError

# Command group modules, in the order a reader meets them from raw video to a served model.
COMMAND_MODULES: tuple[str, ...] = (
    "model.cli",  # assemblenet model summary | export-structure
    "components.data_cli",  # assemblenet data preprocess | synth
    "components.train_cli",  # assemblenet train | evaluate
    "components.registry_cli",  # assemblenet registry ... | predict
    "pipeline.pipeline_cli",  # assemblenet pipeline compile | run | submit | schedule | ...
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assemblenet",
        description="AssembleNet video classification: data, training, evaluation, registry, "
        "and the Kubeflow pipeline that chains them.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging (default: info)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        status = args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
