"""The schedules of the deployments in prefect.yaml, after `synthloop deploy`: paused unless
asked for (a worker left running must not start a full-size run at night), and one line
per scheduled deployment saying when it runs, whether it is on, and how to switch it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ScheduleState", "describe", "project_deployments", "set_schedules"]


@dataclass(frozen=True)
class ScheduleState:
    deployment: str  # flow/deployment, as `prefect deployment ...` commands take it
    schedule_id: str
    when: str  # "cron 0 2 * * * (UTC)", "every 3600 s"
    active: bool


def project_deployments(spec: Path) -> dict[str, str]:
    """Name -> entry point of each deployment prefect.yaml defines: the two together tell
    this project's deployments from another project's of the same name on one server."""
    import yaml

    return {d["name"]: d["entrypoint"] for d in yaml.safe_load(spec.read_text()).get("deployments") or []}


def _when(schedule: Any) -> str:
    if getattr(schedule, "cron", None):
        return f"cron {schedule.cron} ({schedule.timezone or 'UTC'})"
    if getattr(schedule, "interval", None):
        return f"every {schedule.interval.total_seconds():g} s"
    return f"rrule {getattr(schedule, 'rrule', schedule)}"


def set_schedules(deployments: dict[str, str], active: bool) -> list[ScheduleState]:
    """Pause (or resume) every schedule of these deployments on the server PREFECT_API_URL
    names; the schedules afterwards, one per (deployment, schedule). Pausing also deletes
    the runs the scheduler had already queued."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    out = []
    with get_client(sync_client=True) as client:
        deps = client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=list(deployments))))
        flows: dict[Any, str] = {}
        for dep in sorted(deps, key=lambda d: d.name):
            if dep.entrypoint != deployments[dep.name]:
                continue
            if dep.flow_id not in flows:
                flows[dep.flow_id] = client.read_flow(dep.flow_id).name
            for s in dep.schedules:
                if s.active != active:
                    client.update_deployment_schedule(dep.id, s.id, active=active)
                out.append(ScheduleState(f"{flows[dep.flow_id]}/{dep.name}", str(s.id),
                                         _when(s.schedule), active))
    return out


def describe(s: ScheduleState) -> str:
    """One line: the deployment, when it runs, on or off, and the command that flips it."""
    if s.active:
        return (f"schedule {s.deployment}: {s.when}, ACTIVE; pause it: "
                f"prefect deployment schedule pause {s.deployment} {s.schedule_id}")
    return (f"schedule {s.deployment}: {s.when}, paused; turn it on: "
            f"prefect deployment schedule resume {s.deployment} {s.schedule_id}")
