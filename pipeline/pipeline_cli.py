"""``assemblenet pipeline compile | run | submit | schedule | upload-template``.

Heavy imports (kfp, aiplatform, TensorFlow) happen inside the handlers so ``--help`` stays fast.
Bad input raises :class:`model.errors.UserError`, which the entry point prints as one line with
exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.errors import ConfigError

# Flag -> Settings key; every one overrides the environment config file.
_SETTING_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--project", "project", "GCP project id"),
    ("--region", "region", "Vertex AI / Dataflow region"),
    ("--pipeline-root", "pipeline_root", "gs:// prefix for pipeline artifacts"),
    ("--staging-bucket", "staging_bucket", "gs:// bucket for SDK staging"),
    ("--service-account", "service_account", "identity the run acts as"),
    ("--network", "network", "VPC network for peering (projects/N/global/networks/NAME)"),
    ("--kms-key", "kms_key", "Cloud KMS key for CMEK"),
    ("--image-registry", "image_registry", "Docker registry holding the project images"),
    ("--image-tag", "image_tag", "immutable image tag (commit SHA or release)"),
    ("--template-registry", "template_registry", "https://REGION-kfp.pkg.dev/PROJECT/REPO"),
    ("--api-endpoint", "api_endpoint", "Vertex AI API endpoint override"),
    ("--model-display-name", "model_display_name", "Model Registry model name"),
    ("--time-zone", "schedule_time_zone", "IANA time zone for schedules"),
)


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("environment (override the --env file)")
    group.add_argument(
        "--env",
        type=Path,
        default=None,
        help="environment config YAML (e.g. pipeline/configs/dev.yaml)",
    )
    for flag, key, text in _SETTING_FLAGS:
        group.add_argument(flag, dest=f"setting_{key}", default=None, help=text)
    group.add_argument(
        "--label",
        dest="setting_labels",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="run label (repeatable; replaces the file's labels)",
    )


def _key_values(items: Sequence[str] | None, what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {item!r} must look like KEY=VALUE")
        result[key] = value
    return result


def _settings(args: argparse.Namespace) -> Any:
    from pipeline.settings import load_settings

    overrides: dict[str, object | None] = {
        key: getattr(args, f"setting_{key}") for _, key, _ in _SETTING_FLAGS
    }
    if args.setting_labels is not None:
        overrides["labels"] = _key_values(args.setting_labels, "--label")
    return load_settings(args.env, overrides)


def _parse_param_value(text: str) -> object:
    """JSON if it parses (numbers, booleans, objects), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parameters(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    from pipeline.submit import default_parameters

    extra = {k: _parse_param_value(v) for k, v in _key_values(args.param, "--param").items()}
    return default_parameters(
        settings,
        data_location=args.data_location,
        experiment_config=args.experiment_config,
        **extra,
    )


def _caching(args: argparse.Namespace) -> bool | None:
    return {"compiled": None, "on": True, "off": False}[args.caching]


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(text)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--template",
        default="pipeline.yaml",
        help="compiled pipeline: local YAML, gs:// URI, or Artifact Registry URI "
        "(tags are resolved to sha256 digests) (default: pipeline.yaml)",
    )
    parser.add_argument("--data-location", default=None, help="raw videos (gs:// on Vertex)")
    parser.add_argument("--experiment-config", default=None, help="experiment config name or path")
    parser.add_argument(
        "--param",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help="pipeline parameter (repeatable; VALUE parsed as JSON when possible)",
    )
    parser.add_argument(
        "--caching",
        choices=("compiled", "on", "off"),
        default="compiled",
        help="'compiled' keeps each task's compiled caching setting (default); on/off "
        "overrides every task",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    _add_settings_flags(parser)


# ---------------------------------------------------------------------------------- handlers


def _compile(args: argparse.Namespace) -> int:
    from pipeline.compile import compile_pipeline
    from pipeline.dag import TrainerResources
    from pipeline.images import ImageSet
    from pipeline.settings import PLACEHOLDER_REGISTRY, project_version

    images = None
    if args.image_registry or args.image_tag:
        try:
            images = ImageSet.for_registry(
                args.image_registry or PLACEHOLDER_REGISTRY, args.image_tag or project_version()
            )
        except ValueError as error:
            raise ConfigError(f"--image-tag: {error}") from None
    trainer = TrainerResources(
        machine_type=args.machine_type,
        accelerator_type=args.accelerator_type,
        accelerator_count=args.accelerator_count,
        tpu_topology=args.tpu_topology,
        replica_count=args.replica_count,
    )
    path = compile_pipeline(args.target, args.output, images=images, trainer=trainer)
    print(f"compiled the {args.target} pipeline to {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if not args.local:
        raise ConfigError(
            "`pipeline run` runs locally (pass --local); use `pipeline submit` for Vertex AI"
        )
    from pipeline.local_run import SynthOptions, format_result, run_local

    overrides = {k: _parse_param_value(v) for k, v in _key_values(args.set, "--set").items()}
    result = run_local(
        args.workdir,
        experiment_config=args.experiment_config,
        config_overrides=overrides,
        data_location=args.data_location,
        synth=SynthOptions(
            **({} if args.clips_per_class is None else {"clips_per_class": args.clips_per_class}),
            seed=args.seed,
        ),
        registry=args.registry,
        model_display_name=args.model_display_name,
        min_gain=args.min_gain,
        beam_options={
            k: _parse_param_value(v)
            for k, v in _key_values(args.beam_option, "--beam-option").items()
        },
        enable_caching=args.cache,
    )
    _print(args, result.to_dict(), format_result(result))
    return 0


def _submit(args: argparse.Namespace) -> int:
    from pipeline.submit import submit_pipeline

    settings = _settings(args)
    settings.require_cloud("pipeline submit")
    if not args.data_location and not any(p.startswith("data_location=") for p in args.param or ()):
        raise ConfigError("--data-location is required (the pipeline's raw videos)")
    result = submit_pipeline(
        settings,
        args.template,
        _parameters(args, settings),
        display_name=args.display_name,
        job_id=args.job_id,
        enable_caching=_caching(args),
        wait=args.wait,
    )
    _print(args, result, f"submitted {result['name']} ({result['state']})\n{result['dashboard']}")
    return 0


def _schedule_create(args: argparse.Namespace) -> int:
    from pipeline.schedule import create_schedule

    settings = _settings(args)
    settings.require_cloud("pipeline schedule create")
    result = create_schedule(
        settings,
        args.template,
        _parameters(args, settings),
        cron=args.cron,
        display_name=args.display_name,
        max_concurrent_run_count=args.max_concurrent_runs,
        max_run_count=args.max_runs,
        enable_caching=_caching(args),
    )
    _print(args, result, f"created schedule {result['name']} ({result['cron']})")
    return 0


def _schedule_list(args: argparse.Namespace) -> int:
    from pipeline.schedule import list_schedules

    schedules = list_schedules(_settings(args), args.filter)
    lines = [f"{s['name']}  {s['state']}  {s['cron']}  {s['display_name']}" for s in schedules]
    _print(args, schedules, "\n".join(lines) if lines else "no schedules")
    return 0


def _schedule_action(args: argparse.Namespace) -> int:
    from pipeline import schedule

    settings = _settings(args)
    if args.schedule_command == "pause":
        result: Any = schedule.pause_schedule(settings, args.schedule)
    elif args.schedule_command == "resume":
        result = schedule.resume_schedule(settings, args.schedule, catch_up=args.catch_up)
    else:
        result = {"name": schedule.delete_schedule(settings, args.schedule), "state": "DELETED"}
    _print(args, result, f"{result['name']}: {result['state']}")
    return 0


def _upload_template(args: argparse.Namespace) -> int:
    from pipeline.templates import upload_template

    result = upload_template(_settings(args), args.template, tags=args.tag or (), host=args.host)
    _print(args, result, f"uploaded {args.template} as {result['uri']}")
    return 0


# ----------------------------------------------------------------------------------- parser


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``assemblenet pipeline ...`` to the top-level parser."""
    pipeline = subparsers.add_parser(
        "pipeline",
        help="compile, run locally, submit and schedule the Kubeflow pipeline",
        description="The Kubeflow pipeline: preprocess -> train -> evaluate -> register.",
    )
    commands = pipeline.add_subparsers(dest="pipeline_command", metavar="COMMAND", required=True)

    compile_parser = commands.add_parser(
        "compile", help="compile the pipeline to YAML (default: vertex -> pipeline.yaml)"
    )
    compile_parser.add_argument("--target", choices=("vertex", "local"), default="vertex")
    compile_parser.add_argument("--output", type=Path, default=Path("pipeline.yaml"))
    compile_parser.add_argument("--image-registry", default=None)
    compile_parser.add_argument("--image-tag", default=None)
    tpu = compile_parser.add_argument_group("training machine (vertex target)")
    tpu.add_argument("--machine-type", default="cloud-tpu", help="e.g. ct5lp-hightpu-4t")
    tpu.add_argument("--accelerator-type", default="TPU_V3", help="e.g. TPU_V5_LITEPOD")
    tpu.add_argument("--accelerator-count", type=int, default=8)
    tpu.add_argument("--tpu-topology", default=None, help="e.g. 2x2 (v5e/v6e)")
    tpu.add_argument("--replica-count", type=int, default=1)
    compile_parser.set_defaults(handler=_compile)

    run_parser = commands.add_parser(
        "run", help="run the whole pipeline locally (kfp.local, no cloud, no Docker)"
    )
    run_parser.add_argument("--local", action="store_true", help="run on this machine")
    run_parser.add_argument("--workdir", type=Path, default=Path("work"))
    run_parser.add_argument("--experiment-config", default="synthetic")
    run_parser.add_argument(
        "--set", action="append", default=None, metavar="KEY=VALUE", help="config override"
    )
    run_parser.add_argument("--data-location", default=None, help="UCF101-layout video dir")
    run_parser.add_argument(
        "--clips-per-class",
        type=int,
        default=None,
        help="synthetic clips per class (default: 100, i.e. 640 train / 160 test clips)",
    )
    run_parser.add_argument("--seed", type=int, default=0)
    run_parser.add_argument("--registry", default=None, help="default: WORKDIR/registry")
    run_parser.add_argument("--model-display-name", default="assemblenet-synthetic")
    run_parser.add_argument("--min-gain", type=float, default=0.0)
    run_parser.add_argument(
        "--beam-option",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="DirectRunner option, e.g. direct_running_mode=in_memory (repeatable)",
    )
    run_parser.add_argument(
        "--cache",
        action="store_true",
        help="reuse unchanged preprocess/train/evaluate outputs of earlier runs in WORKDIR",
    )
    run_parser.add_argument("--json", action="store_true", help="machine-readable output")
    run_parser.set_defaults(handler=_run)

    submit_parser = commands.add_parser("submit", help="submit a run to Vertex AI Pipelines")
    submit_parser.add_argument("--display-name", default=None)
    submit_parser.add_argument("--job-id", default=None)
    submit_parser.add_argument("--wait", action="store_true", help="wait for the run to end")
    _add_run_options(submit_parser)
    submit_parser.set_defaults(handler=_submit)

    schedule_parser = commands.add_parser("schedule", help="Vertex AI pipeline schedules")
    schedules = schedule_parser.add_subparsers(
        dest="schedule_command", metavar="ACTION", required=True
    )
    create = schedules.add_parser("create", help="create a cron schedule")
    create.add_argument("--cron", required=True, help='e.g. "0 3 * * 1" or "TZ=UTC 0 3 * * 1"')
    create.add_argument("--display-name", required=True)
    create.add_argument("--max-concurrent-runs", type=int, default=1)
    create.add_argument("--max-runs", type=int, default=None)
    _add_run_options(create)
    create.set_defaults(handler=_schedule_create)
    list_parser = schedules.add_parser("list", help="list schedules")
    list_parser.add_argument("--filter", default=None, help='e.g. state="ACTIVE"')
    list_parser.add_argument("--json", action="store_true")
    _add_settings_flags(list_parser)
    list_parser.set_defaults(handler=_schedule_list)
    for action, text in (("pause", "pause"), ("resume", "resume"), ("delete", "delete")):
        action_parser = schedules.add_parser(action, help=f"{text} a schedule")
        action_parser.add_argument("schedule", help="schedule id or resource name")
        if action == "resume":
            action_parser.add_argument("--catch-up", action="store_true")
        action_parser.add_argument("--json", action="store_true")
        _add_settings_flags(action_parser)
        action_parser.set_defaults(handler=_schedule_action)

    upload = commands.add_parser(
        "upload-template", help="upload pipeline.yaml to Artifact Registry (by digest)"
    )
    upload.add_argument("--template", default="pipeline.yaml")
    upload.add_argument("--tag", action="append", default=None, help="tag (repeatable)")
    upload.add_argument("--host", default=None, help="override template_registry")
    upload.add_argument("--json", action="store_true")
    _add_settings_flags(upload)
    upload.set_defaults(handler=_upload_template)
