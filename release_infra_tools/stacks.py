"""The environments' stacks through Pulumi's Automation API: read outputs and config, change config, update.

Every change a release makes is a config change followed by a stack update, so it is in the stack's history.
When an update fails, the config it was given is put back, so the stack file always says what was last applied.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from functools import cached_property
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from pulumi import automation as auto

from core.names import ENVIRONMENTS, PROJECT


class StackError(Exception):
    """A stack that cannot be read or updated: one line that says which and what to do."""


class ConfigNotPutBack(StackError):
    """A failed step whose config could not be put back: nothing more may run on the stack file as it is."""


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
            self.workspace = auto.LocalWorkspace(work_dir=str(project_dir), pulumi_command=_PulumiOnPath())
        except (auto.CommandError, FileNotFoundError, auto.errors.InvalidVersionError) as error:
            raise StackError(f"cannot run the pulumi CLI: {_first_line(error)}") from None

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
        """One `pulumi stack output --json`. The outputs hold no secret (core.outputs), so this is all of them; the
        Automation API's ``stack_outputs`` makes a second call, with --show-secrets, that decrypts as well."""
        result = self._call(lambda: self.workspace.pulumi_command.run(
            ["stack", "output", "--json", "--stack", self.require(environment)], str(self.project_dir), {}),
            f"read the outputs of {environment}")
        return json.loads(result.stdout)

    def all_outputs(self, environments: list[str]) -> dict[str, dict[str, Any]]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return dict(zip(environments, pool.map(self.outputs, environments)))

    def config(self, environment: str) -> dict[str, Any]:
        """The stack's release-infra config as its stack file has it (secure values left out).

        Read from Pulumi.<env>.yaml in-process, as the Automation API's ``stack_settings`` does (which keeps
        only plain strings and drops structured values such as ``services``): `pulumi config` would cost a CLI
        call and a decryption on every read, the largest part of a rollback's overhead.
        """
        path = self.project_dir / f"Pulumi.{self.require(environment)}.yaml"
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise StackError(f"no {path.name} in {self.project_dir}: the stack has no config here") from None
        except (OSError, yaml.YAMLError) as error:
            raise StackError(f"{path.name} cannot be read: {_first_line(error)}") from None
        values = document.get("config") or {}
        return {key.split(":", 1)[1]: value for key, value in values.items()
                if key.startswith(f"{PROJECT}:") and not (isinstance(value, dict) and "secure" in value)}

    def state(self, environment: str) -> dict[str, Any]:
        """The stack's state as `pulumi stack export` gives it (its ``deployment``)."""
        exported = self._call(lambda: self.workspace.export_stack(environment), f"export the state of {environment}")
        return exported.deployment or {}

    def pending_operations(self, environment: str) -> list[str]:
        """Resources the engine left mid-operation (an update killed hard): updating over them is unsafe."""
        pending = self.state(environment).get("pending_operations") or []
        return [f"{op.get('type', '?')} {op.get('resource', {}).get('urn', '?').rsplit('::', 1)[-1]}"
                for op in pending]

    def update(self, environment: str, changes: Mapping[str, str], message: str,
               before: Mapping[str, Any] | None = None, check: Future[None] | None = None) -> Update:
        """Set each config path and update the stack; on failure the previous values go back into the config.

        ``before`` is the config as just read, when the caller has it: one CLI call less on the rollback path.
        ``check``, a check still running, is awaited before the update: whatever it raises puts the config back
        and updates nothing, so a check's own CLI call overlaps the config's.
        The update is `pulumi up` through the Automation API's PulumiCommand rather than ``Stack.up``, which
        reads the outputs and the history back after the update (three more CLI calls a rollback does not need).
        """
        self.require(environment)
        before = self.config(environment) if before is None else before
        done: list[str] = []
        try:
            for path, value in changes.items():
                self._call(lambda: self.workspace.set_config(environment, path, auto.ConfigValue(value), path=True),
                           f"set {path} on {environment}")
                done.append(path)
        except StackError as error:
            # A half-set change is another change: a canary's rollback (active and weight) with only the colour
            # set would promote the canary on the next update.
            self._put_back(environment, before, done, error)
            raise StackError(f"{error}; the config is as it was, nothing was updated") from None
        try:
            if check is not None:
                check.result()
        except BaseException as error:
            self._put_back(environment, before, done, error)
            raise
        started = time.monotonic()
        try:
            result = self._up(environment, message)
        except auto.ConcurrentUpdateError:
            locked = (f"stack {environment} is locked by another update; wait for it to finish, or if it died, clear "
                      f"the lock with `pulumi cancel --stack {environment}`")
            self._put_back(environment, before, changes, locked)
            raise StackError(locked) from None
        except auto.CommandError as error:
            reason = _engine_error(error)
            partly = " after applying part of it" if reason == CANCELLED or _applied_some(error) else ""
            self._put_back(environment, before, changes, f"update of {environment} failed{partly}: {reason}")
            if reason == CANCELLED:
                raise StackError(self._reapply(environment, message, "was interrupted", "interrupted")) from None
            if _applied_some(error):  # a resource failed after others were changed: undo those too
                raise StackError(self._reapply(environment, message, f"failed after applying part of it ({reason})",
                                               "failed midway")) from None
            raise StackError(f"update of {environment} failed, config put back: {reason}") from None
        return Update(time.monotonic() - started, _resource_changes(result.stdout))

    def _up(self, environment: str, message: str) -> auto.CommandResult:
        return self.workspace.pulumi_command.run(
            ["up", "--yes", "--skip-preview", "--json", "--stack", environment, "--message", message],
            str(self.project_dir), {})

    def _reapply(self, environment: str, message: str, what: str, note: str) -> str:
        """After an update stopped midway (Ctrl-C cancelled it, or a resource failed): apply the config that was
        put back, since what the engine had applied before it stopped stays applied. Returns the state the stack
        is in, in one line."""
        try:
            self._up(environment, f"{message}: {note}; the previous config applied again")
        except auto.CommandError as error:
            return (f"update of {environment} {what}, and applying its previous config again failed "
                    f"({_engine_error(error)}): run `pulumi up --stack {environment}` to bring the stack back to "
                    "its config")
        return (f"update of {environment} {what}: its config was put back and applied again, so the "
                "stack is as it was before that update")

    def _put_back(self, environment: str, before: Mapping[str, Any], paths: Iterable[str],
                  failure: BaseException | str) -> None:
        """Put the previous values of ``paths`` back after ``failure``. When the CLI cannot, nothing more may run
        (a re-apply would apply the new config): the failure is raised with the commands that finish the job."""
        left, reason = [], ""
        for path in paths:
            previous = _lookup(before, path)
            try:
                if previous is not None:
                    self.workspace.set_config(environment, path, auto.ConfigValue(str(previous)), path=True)
                else:
                    self.workspace.remove_config(environment, path, path=True)
            except auto.CommandError as error:
                reason = reason or _engine_error(error)
                left.append(f"pulumi config set --path {shlex.quote(path)} {shlex.quote(str(previous))} --stack "
                            f"{environment}" if previous is not None else
                            f"pulumi config rm --path {shlex.quote(path)} --stack {environment}")
        if left:
            raise ConfigNotPutBack(f"{failure}; and the config could not be put back ({reason}): put it back with "
                             + " and ".join(f"`{command}`" for command in left)) from None

    def _call(self, action, what: str):  # type: ignore[no-untyped-def]
        try:
            return action()
        except auto.StackNotFoundError:
            raise StackError(f"cannot {what}: the stack does not exist in this backend "
                             f"(`pulumi stack ls` lists the ones that do)") from None
        except auto.CommandError as error:
            raise StackError(f"cannot {what}: {_engine_error(error)}") from None


class _PulumiOnPath(auto.PulumiCommand):
    """The pulumi CLI on PATH, its version asked for and checked only when an operation depends on it.

    PulumiCommand runs `pulumi version` as it is made, a third of a second on every `release` run; the
    operations a release uses (`config set --path`, `up`, `stack output`, `stack export`) do not depend on it.
    """

    def __init__(self) -> None:  # no `pulumi version` here: see above
        command = shutil.which("pulumi")
        if command is None:
            raise FileNotFoundError("no `pulumi` on PATH (scripts/bootstrap-engine.sh provides it)")
        self.command = command

    @cached_property
    def version(self):  # type: ignore[no-untyped-def, override]
        return auto.PulumiCommand().version


def _resource_changes(events: str) -> dict[str, int]:
    """Counts per operation from the engine's summary event (`pulumi up --json` streams one event per line)."""
    for line in reversed(events.splitlines()):
        if '"summaryEvent"' in line:
            return dict(json.loads(line)["summaryEvent"].get("resourceChanges") or {})
    return {}


def _applied_some(error: auto.CommandError) -> bool:
    """Whether a failed update changed any resource before it stopped, by its summary event."""
    stdout = str(error).partition("\n stderr: ")[0]
    return any(op != "same" and count for op, count in _resource_changes(stdout).items())


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


CANCELLED = "update canceled"  # the engine's error when Ctrl-C stopped it between two resource operations
GENERIC = ("update failed", "an unhandled error occurred", "Program exited with non-zero exit code")


def _engine_error(error: auto.CommandError) -> str:
    """The engine's telling error line (the program's own message when it refused the config), not its summary.

    `--json` streams the diagnostics to stdout, one event per line; stderr has the CLI's last word.
    """
    stdout, _, stderr = str(error).partition("\n stderr: ")
    lines = []
    for line in stdout.splitlines():
        if '"diagnosticEvent"' in line:
            event = json.loads(line)["diagnosticEvent"]
            if event.get("severity") == "error":
                lines += event.get("message", "").splitlines()
    lines += stderr.splitlines()
    lines = [line.strip().removeprefix("error: ") for line in lines if line.strip() and not line.startswith("{")]
    telling = [line for line in lines if not any(generic in line for generic in GENERIC)]
    return ((telling or lines or ["no message"])[0])[:400]


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or ["no message"])[0]
