"""The environments' stacks through Pulumi's Automation API: read outputs and config, change config, update.

Every change a release makes is a config change followed by a stack update, so it is in the stack's history.
When an update fails, the config it was given is put back, so the stack file always says what was last applied.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from pulumi import automation as auto

from core.release.status import ENVIRONMENTS
from core.settings import PROJECT


class StackError(Exception):
    """A stack that cannot be read or updated: one line that says which and what to do."""


@dataclass(frozen=True)
class Update:
    seconds: float
    changes: dict[str, int]


class Environments:
    """The four environments' stacks of one project directory."""

    def __init__(self, project_dir: Path) -> None:
        if not (project_dir / "Pulumi.yaml").is_file():
            raise StackError(f"{project_dir} has no Pulumi.yaml; pass --project-dir with the release-infra project")
        self.project_dir = project_dir
        try:
            self.workspace = auto.LocalWorkspace(work_dir=str(project_dir))
        except (auto.CommandError, FileNotFoundError, auto.errors.InvalidVersionError) as error:
            raise StackError(f"cannot run the pulumi CLI: {_first_line(error)}") from None
        self._stacks: dict[str, auto.Stack] = {}

    def require(self, environment: str) -> str:
        """An environment's stack name, or one line naming what is known."""
        if environment not in ENVIRONMENTS:
            raise StackError(f"unknown environment '{environment}'; known: {', '.join(ENVIRONMENTS)}")
        return environment

    def last_updates(self) -> dict[str, datetime | None]:
        """When each existing stack was last updated (one `pulumi stack ls` for all of them)."""
        summaries = self._call(lambda: self.workspace.list_stacks(), "list the stacks")
        return {summary.name: _utc(summary.last_update) for summary in summaries}

    def outputs(self, environment: str) -> dict[str, Any]:
        outputs = self._call(lambda: self.workspace.stack_outputs(environment), f"read the outputs of {environment}")
        return {key: value.value for key, value in outputs.items()}

    def all_outputs(self, environments: list[str]) -> dict[str, dict[str, Any]]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return dict(zip(environments, pool.map(self.outputs, environments)))

    def config(self, environment: str) -> dict[str, Any]:
        """The stack's release-infra config, structured values decoded (secrets stay as Pulumi shows them)."""
        values = self._call(lambda: self.workspace.get_all_config(self.require(environment)),
                            f"read the config of stack {environment}")
        config = {}
        for key, value in values.items():
            if not key.startswith(f"{PROJECT}:") or value.secret:
                continue
            text = value.value
            try:
                config[key.split(":", 1)[1]] = json.loads(text) if text[:1] in "{[" else text
            except ValueError:
                config[key.split(":", 1)[1]] = text
        return config

    def pending_operations(self, environment: str) -> list[str]:
        """Resources the engine left mid-operation (an update killed hard): updating over them is unsafe."""
        deployment = self._call(lambda: self.workspace.export_stack(environment),
                                f"export the state of {environment}")
        pending = (deployment.deployment or {}).get("pending_operations") or []
        return [f"{op.get('type', '?')} {op.get('resource', {}).get('urn', '?').rsplit('::', 1)[-1]}"
                for op in pending]

    def update(self, environment: str, changes: Mapping[str, str], message: str,
               before: Mapping[str, Any] | None = None) -> Update:
        """Set each config path and update the stack; on failure the previous values go back into the config.

        ``before`` is the config as just read, when the caller has it: one CLI call less on the rollback path.
        """
        stack = self._stack(environment)
        before = self.config(environment) if before is None else before
        for path, value in changes.items():
            self._call(lambda: stack.set_config(path, auto.ConfigValue(value), path=True),
                       f"set {path} on {environment}")
        started = time.monotonic()
        try:
            result = stack.up(message=message, color="never", suppress_progress=True)
        except auto.ConcurrentUpdateError:
            self._restore(stack, before, changes)
            raise StackError(f"stack {environment} is locked by another update; wait for it to finish, or if it "
                             f"died, clear the lock with `pulumi cancel --stack {environment}`") from None
        except auto.CommandError as error:
            self._restore(stack, before, changes)
            raise StackError(f"update of {environment} failed, config put back: {_engine_error(error)}") from None
        return Update(time.monotonic() - started, dict(result.summary.resource_changes or {}))

    def _restore(self, stack: auto.Stack, before: Mapping[str, Any], changes: Mapping[str, str]) -> None:
        for path in changes:
            previous = _lookup(before, path)
            if previous is not None:
                stack.set_config(path, auto.ConfigValue(str(previous)), path=True)
            else:
                stack.remove_config(path, path=True)

    def _stack(self, environment: str) -> auto.Stack:
        if environment not in self._stacks:
            self.require(environment)
            self._stacks[environment] = self._call(lambda: auto.Stack.select(environment, self.workspace),
                                                   f"select stack {environment}")
        return self._stacks[environment]

    def _call(self, action, what: str):  # type: ignore[no-untyped-def]
        try:
            return action()
        except auto.StackNotFoundError:
            raise StackError(f"cannot {what}: the stack does not exist in this backend "
                             f"(`pulumi stack ls` lists the ones that do)") from None
        except auto.CommandError as error:
            raise StackError(f"cannot {what}: {_engine_error(error)}") from None


def _lookup(config: Mapping[str, Any], path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _engine_error(error: auto.CommandError) -> str:
    """The engine's own error lines, without the CLI's stdout and the diagnostics' boilerplate."""
    text = getattr(error, "stderr", "") or str(error)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return (errors[-1] if errors else (lines[-1] if lines else "no message"))[:400]


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or ["no message"])[0]
