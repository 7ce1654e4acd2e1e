"""Recurring pipeline runs as Vertex AI pipeline schedules (``PipelineJobSchedule``).

A schedule pairs a cron expression with the ``PipelineJob`` each firing creates (same template,
parameters, service account and network as :mod:`pipeline.submit`). Cron expressions carry their
time zone as a ``TZ=`` prefix; the environment's ``schedule_time_zone`` is added when the
expression has none, so "0 3 * * 1" means 03:00 on Mondays where the team is, not in UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from model.errors import ConfigError, RegistryError
from pipeline.settings import Settings
from pipeline.submit import init_aiplatform, make_pipeline_job

logger = logging.getLogger(__name__)


def cron_with_time_zone(cron: str, time_zone: str) -> str:
    """Returns ``cron`` prefixed with ``TZ=<time_zone>`` unless it already names one.

    Raises:
        ConfigError: not five cron fields, or an unknown IANA time zone.
    """
    cron = " ".join(cron.split())
    prefix = ""
    if cron.startswith(("TZ=", "CRON_TZ=")):
        prefix, _, cron = cron.partition(" ")
        time_zone = prefix.split("=", 1)[1]
    if len(cron.split(" ")) != 5:
        raise ConfigError(f"cron expression {cron!r} must have 5 fields (min hour dom month dow)")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {time_zone!r} (use an IANA name)") from None
    return f"{prefix or f'TZ={time_zone}'} {cron}"


def _schedule_to_dict(schedule: Any) -> dict[str, Any]:
    resource = schedule.gca_resource
    return {
        "name": schedule.resource_name,
        "display_name": resource.display_name,
        "cron": resource.cron,
        "state": schedule.state.name if schedule.state is not None else "UNKNOWN",
        "max_concurrent_run_count": int(resource.max_concurrent_run_count),
    }


def create_schedule(
    settings: Settings,
    template: str,
    parameter_values: Mapping[str, Any],
    *,
    cron: str,
    display_name: str,
    max_concurrent_run_count: int = 1,
    max_run_count: int | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
    enable_caching: bool | None = None,
) -> dict[str, Any]:
    """Creates a schedule running ``template`` on ``cron`` (time zone added if missing).

    Returns:
        The schedule's name, display name, cron, state and concurrency.
    """
    init_aiplatform(settings, "pipeline schedule create")
    job = make_pipeline_job(
        settings,
        template,
        parameter_values,
        display_name=display_name,
        enable_caching=enable_caching,
    )
    schedule = job.create_schedule(
        cron=cron_with_time_zone(cron, settings.schedule_time_zone),
        display_name=display_name,
        start_time=start_time,
        end_time=end_time,
        max_run_count=max_run_count,
        max_concurrent_run_count=max_concurrent_run_count,
        service_account=settings.service_account,
        network=settings.network,
    )
    logger.info("created schedule %s", schedule.resource_name)
    return _schedule_to_dict(schedule)


def _get(settings: Settings, schedule: str, command: str) -> Any:
    from google.api_core import exceptions
    from google.cloud import aiplatform

    init_aiplatform(settings, command)
    try:
        return aiplatform.PipelineJobSchedule.get(
            schedule.rsplit("/", 1)[-1], project=settings.project, location=settings.region
        )
    except exceptions.NotFound:
        raise RegistryError(f"schedule {schedule} not found in {settings.region}") from None


def list_schedules(settings: Settings, filter: str | None = None) -> list[dict[str, Any]]:
    """Lists the project's pipeline schedules (optionally filtered, e.g. ``state=ACTIVE``)."""
    from google.cloud import aiplatform

    init_aiplatform(settings, "pipeline schedule list")
    schedules = aiplatform.PipelineJobSchedule.list(
        filter=filter, project=settings.project, location=settings.region
    )
    return [_schedule_to_dict(schedule) for schedule in schedules]


def pause_schedule(settings: Settings, schedule: str) -> dict[str, Any]:
    """Pauses a schedule (id or full resource name); firings stop until resumed."""
    found = _get(settings, schedule, "pipeline schedule pause")
    found.pause()
    return _schedule_to_dict(_get(settings, schedule, "pipeline schedule pause"))


def resume_schedule(settings: Settings, schedule: str, catch_up: bool = False) -> dict[str, Any]:
    """Resumes a paused schedule; ``catch_up`` also runs the firings missed while paused."""
    found = _get(settings, schedule, "pipeline schedule resume")
    found.resume(catch_up=catch_up)
    return _schedule_to_dict(_get(settings, schedule, "pipeline schedule resume"))


def delete_schedule(settings: Settings, schedule: str) -> str:
    """Deletes a schedule; returns its resource name."""
    found = _get(settings, schedule, "pipeline schedule delete")
    name = found.resource_name
    found.delete()
    return name
