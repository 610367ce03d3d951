"""release status: the four environments' stacks side by side, for people, for programs and for Prometheus."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.names import ENVIRONMENTS
from core.release.status import StatusError, as_json, environment_status, metrics, table_rows
from release_infra_tools.release import UsageError
from release_infra_tools.stacks import Environments


def status(environments: Environments, output_format: str, output: Path | None) -> None:
    updates = environments.last_updates()
    present = [name for name in ENVIRONMENTS if name in updates]
    if not present:
        raise UsageError("no environment stack exists in this backend (`pulumi stack ls`)")
    outputs = environments.all_outputs(present)
    try:
        statuses = [environment_status(name, outputs[name], updates[name]) for name in present]
    except StatusError as error:
        raise UsageError(str(error)) from None
    if output_format == "json":
        text = json.dumps(as_json(statuses), indent=2) + "\n"
    elif output_format == "prometheus":
        text = _prometheus_text(statuses)
    else:
        text = _table(statuses)
    if output is None:
        sys.stdout.write(text)
    elif output_format == "prometheus":
        from prometheus_client import CollectorRegistry, write_to_textfile
        registry = CollectorRegistry()
        registry.register(_StatusCollector(statuses))
        write_to_textfile(str(output), registry)  # atomic: the collector never reads half a file
    else:
        output.write_text(text)


class _StatusCollector:
    def __init__(self, statuses: list) -> None:  # type: ignore[type-arg]
        self.statuses = statuses

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.core import GaugeMetricFamily
        for metric in metrics(self.statuses):
            names = sorted({label for sample in metric.samples for label in sample.labels})
            family = GaugeMetricFamily(metric.name, metric.help, labels=names)
            for sample in metric.samples:
                family.add_metric([sample.labels.get(name, "") for name in names], sample.value)
            yield family


def _prometheus_text(statuses: list) -> str:  # type: ignore[type-arg]
    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry()
    registry.register(_StatusCollector(statuses))
    return generate_latest(registry).decode()


def _table(statuses: list) -> str:  # type: ignore[type-arg]
    from rich.console import Console
    from rich.table import Table
    table = Table(title="release status", show_lines=True)
    table.add_column("service")
    for status_ in statuses:
        updated = status_.last_update.strftime("%Y-%m-%d %H:%M UTC") if status_.last_update else "never updated"
        table.add_column(f"{status_.environment}\n{updated}")
    for row in table_rows(statuses):
        table.add_row(*row)
    console = Console(width=160, force_terminal=False, color_system=None, record=True)
    with console.capture() as capture:
        console.print(table)
    return capture.get()
