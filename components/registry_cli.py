"""``assemblenet registry list|show|promote|rollback`` and ``assemblenet predict``.

Which registry: ``--registry DIR`` (embedded) or ``--registry vertex://PROJECT/REGION``; or
``--project`` (Vertex AI, with ``--region``, ``--api-endpoint``, ``--staging-bucket``); otherwise
the environment (``GOOGLE_CLOUD_PROJECT``, ``ASSEMBLENET_REGISTRY_DIR``, ``VERTEX_API_ENDPOINT``,
``VERTEX_STAGING_BUCKET``); otherwise the embedded registry in ``work/registry``, where
``assemblenet pipeline run --local`` registers by default.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, TypeVar

from model.errors import RegistryError, UserError

T = TypeVar("T")


def _add_registry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry")
    group.add_argument(
        "--registry",
        metavar="DIR|vertex://PROJECT/REGION",
        help="embedded registry directory or Vertex AI location (default: from the options "
        "below, the environment, or work/registry)",
    )
    group.add_argument("--project", help="GCP project: use the Vertex AI Model Registry")
    group.add_argument("--region", help="Vertex AI region (default us-central1)")
    group.add_argument("--api-endpoint", help="Vertex AI API endpoint override")
    group.add_argument("--staging-bucket", help="gs:// bucket for model files")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def _registry(args: argparse.Namespace) -> Any:
    from components.registry import RegistrySettings, open_registry

    if args.registry:
        return open_registry(args.registry)
    return open_registry(
        RegistrySettings.from_env(
            project=args.project,
            region=args.region,
            api_endpoint=args.api_endpoint,
            staging_bucket=args.staging_bucket,
        )
    )


def _guard(fn: Callable[[], T]) -> T:
    """Run a registry call; a failed cloud request becomes a one-line RegistryError."""
    try:
        return fn()
    except UserError:
        raise
    except Exception as error:
        try:
            from google.api_core import exceptions
        except ImportError:  # pragma: no cover - cloud extras not installed
            raise error from None
        if isinstance(error, exceptions.GoogleAPICallError):
            raise RegistryError(f"registry request failed: {error.message}") from None
        raise


def _print(args: argparse.Namespace, payload: Any, text: str) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True) if args.json else text)


def _version_rows(reg: Any, model_name: str) -> list[dict[str, Any]]:
    rows = []
    for version in reg.list_versions(model_name):
        row = version.to_dict()
        row["metrics"] = reg.get_evaluation(model_name, version.version_id) or {}
        rows.append(row)
    return rows


def _format_row(row: dict[str, Any]) -> str:
    top_1 = row["metrics"].get("top_1")
    return (
        f"{row['version_id']:>7}  {','.join(sorted(row['aliases'])) or '-':<28}  "
        f"{'-' if top_1 is None else f'{top_1:.4f}':>7}  "
        f"{row['labels'].get('pipeline-run', '-'):<32}  {row['create_time']}"
    )


def _list(args: argparse.Namespace) -> int:
    from components.registry.base import check_model_name

    def run() -> int:
        reg = _registry(args)
        if not args.model:
            if not hasattr(reg, "list_models"):
                raise RegistryError("give a model name to list its versions")
            models = reg.list_models()
            _print(args, {"models": models}, "\n".join(models) or "(no models)")
            return 0
        rows = _version_rows(reg, check_model_name(args.model))
        header = f"{'version':>7}  {'aliases':<28}  {'top_1':>7}  {'pipeline run':<32}  created"
        _print(
            args,
            {"model": args.model, "versions": rows},
            "\n".join([header] + [_format_row(r) for r in rows]),
        )
        return 0

    return _guard(run)


def _show(args: argparse.Namespace) -> int:
    from components.registry import parse_model_ref

    def run() -> int:
        name, ref = parse_model_ref(args.model)
        reg = _registry(args)
        row = reg.get_version(name, ref).to_dict()
        row["metrics"] = reg.get_evaluation(name, row["version_id"]) or {}
        text = "\n".join(
            [f"{name}@{row['version_id']}  aliases: {', '.join(sorted(row['aliases'])) or '-'}"]
            + [f"  {k}: {row[k]}" for k in ("artifact_uri", "create_time", "resource_name")]
            + [f"  label {k}={v}" for k, v in sorted(row["labels"].items())]
            + [
                f"  metric {k}={v:.4f}"
                for k, v in sorted(row["metrics"].items())
                if isinstance(v, int | float)
            ]
        )
        _print(args, row, text)
        return 0

    return _guard(run)


def _promote(args: argparse.Namespace) -> int:
    from components.registry import parse_model_ref

    def run() -> int:
        name, ref = parse_model_ref(args.model)
        version = _registry(args).promote(name, ref)
        _print(args, version.to_dict(), f"{name}@{version.version_id} is now champion")
        return 0

    return _guard(run)


def _rollback(args: argparse.Namespace) -> int:
    from components.registry.base import check_model_name

    def run() -> int:
        version = _registry(args).rollback(check_model_name(args.model))
        _print(
            args,
            version.to_dict(),
            f"{args.model}: champion rolled back to version {version.version_id}",
        )
        return 0

    return _guard(run)


def _predict(args: argparse.Namespace) -> int:
    from components.registry import parse_model_ref

    def run() -> int:
        if args.batch:
            if not args.input_list or not args.output:
                raise RegistryError("--batch needs --input-list gs://...txt and --output gs://...")
            if args.videos:
                raise RegistryError("--batch reads videos from --input-list, not the command line")
            name, ref = parse_model_ref(args.model)
            reg = _registry(args)
            if not hasattr(reg, "batch_predict"):
                raise RegistryError(
                    "--batch submits a Vertex AI batch prediction job: use a Vertex AI registry "
                    "(--project or --registry vertex://PROJECT/REGION)"
                )
            job = reg.batch_predict(
                name, ref, input_list=args.input_list, output_prefix=args.output
            )
            _print(args, {"batch_prediction_job": job}, f"submitted {job}")
            return 0
        if not args.videos:
            raise RegistryError("give at least one VIDEO (or --batch with --input-list)")
        from components.predict import predict

        results = predict(args.model, args.videos, registry=_registry(args), top_k=args.top_k)
        lines = []
        for result in results:
            lines.append(f"{result['video']}  ({result['model']} = version {result['version_id']})")
            lines += [f"  {t['probability']:.4f}  {t['label']}" for t in result["top_k"]]
        _print(args, {"predictions": results}, "\n".join(lines))
        return 0

    return _guard(run)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``registry`` (list/show/promote/rollback) and ``predict``."""
    registry = subparsers.add_parser(
        "registry",
        help="inspect and move model versions (Vertex AI or the embedded registry)",
        description="Versions, aliases (champion/challenger/default) and evaluations of "
        "registered models.",
    )
    commands = registry.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    p = commands.add_parser("list", help="models, or the versions of one model")
    p.add_argument("model", nargs="?", metavar="NAME", help="model name (omit: list models)")
    _add_registry_options(p)
    p.set_defaults(handler=_list)

    p = commands.add_parser("show", help="one version: aliases, labels, evaluation")
    p.add_argument("model", metavar="NAME@ALIAS", help="e.g. assemblenet@champion or NAME@3")
    _add_registry_options(p)
    p.set_defaults(handler=_show)

    p = commands.add_parser("promote", help="make a version champion (and default)")
    p.add_argument("model", metavar="NAME@VERSION", help="e.g. assemblenet@3 or NAME@challenger")
    _add_registry_options(p)
    p.set_defaults(handler=_promote)

    p = commands.add_parser("rollback", help="give champion back to the previous champion")
    p.add_argument("model", metavar="NAME")
    _add_registry_options(p)
    p.set_defaults(handler=_rollback)

    p = subparsers.add_parser(
        "predict",
        help="classify videos with a registered model",
        description="Resolve NAME@ALIAS in the registry, load its SavedModel and print the "
        "top-k classes of each video (local path or gs:// URI). With --batch, submit a Vertex "
        "AI batch prediction job instead.",
    )
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="local paths or gs:// URIs")
    p.add_argument("--model", required=True, metavar="NAME@ALIAS", help="e.g. assemblenet@champion")
    p.add_argument("--top-k", type=int, default=5, help="classes to print per video (default 5)")
    p.add_argument("--batch", action="store_true", help="submit a Vertex AI batch prediction job")
    p.add_argument("--input-list", metavar="GS_URI", help="--batch: text file of video URIs")
    p.add_argument("--output", metavar="GS_PREFIX", help="--batch: where predictions go")
    _add_registry_options(p)
    p.set_defaults(handler=_predict)
