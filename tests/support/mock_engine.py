"""Runs a Pulumi program under mocks and records every registration, each run in a fresh context and event loop."""

from __future__ import annotations

import asyncio
import contextvars
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import pulumi
from pulumi.runtime.mocks import MockMonitor

from infra.program import SECRET_CONFIG_KEYS
from infra.stack_state import READ_STACK_OUTPUTS


@dataclass(frozen=True)
class Registration:
    type: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    parent: str
    urn: str
    dependencies: tuple[str, ...] = ()
    timeouts: tuple[str, str] = ("", "")  # customTimeouts: create, update
    ignore_changes: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """'kubernetes:apps/v1:Deployment' -> 'Deployment'."""
        return self.type.rsplit(":", 1)[-1]


@dataclass
class Run:
    registrations: list[Registration] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None

    def of_kind(self, kind: str) -> list[Registration]:
        return [r for r in self.registrations if r.kind == kind]

    def by_name(self) -> dict[tuple[str, str], Registration]:
        return {(r.type, r.name): r for r in self.registrations}

    def named(self, name: str) -> Registration:
        [match] = [r for r in self.registrations if r.name == name]
        return match

    def ancestors(self, registration: Registration) -> list[Registration]:
        by_urn = {r.urn: r for r in self.registrations}
        chain = []
        while registration.parent in by_urn:
            registration = by_urn[registration.parent]
            chain.append(registration)
        return chain


class _Mocks(pulumi.runtime.Mocks):
    """Answers the engine's readStackOutputs invoke from ``stack_outputs`` (stack name -> its last outputs)."""

    def __init__(self, stack_outputs: dict[str, dict[str, Any]]):
        self._stack_outputs = stack_outputs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        if args.token == READ_STACK_OUTPUTS:
            name = args.args["name"]
            return {"name": name, "outputs": self._stack_outputs.get(name.rsplit("/", 1)[-1], {})}, []
        return {}, []


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks, run: Run):
        super().__init__(mocks)
        self._run = run

    def RegisterResource(self, request):  # noqa: N802 (the gRPC method's name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = self.resources[response.urn].state
            self._run.registrations.append(Registration(
                request.type, request.name, inputs, request.custom, request.parent, response.urn,
                tuple(request.dependencies), (request.customTimeouts.create, request.customTimeouts.update),
                tuple(request.ignoreChanges)))
        return response


def run_program(program: Callable[[], Any], *, stack: str, config: dict[str, Any], project: str = "release-infra",
                preview: bool = False, keep_error: bool = False,
                stack_outputs: dict[str, dict[str, Any]] | None = None,
                secret_keys: tuple[str, ...] | None = None) -> Run:
    """Run ``program`` as Pulumi would for ``stack`` with ``config`` (keys without the project prefix).

    ``stack_outputs`` (stack -> outputs of its last update) is what the engine would read from the backend, this
    stack's own previous outputs included; a stack not in it has none yet. ``secret_keys`` are the config keys
    set with ``--secret``; by default the credential keys ``config`` sets, as a stack set up right has them.
    An error of the program is raised, or with ``keep_error`` kept in ``Run.error`` beside what was registered.
    """
    if secret_keys is None:
        secret_keys = tuple(key for key in SECRET_CONFIG_KEYS if key in config)
    run = contextvars.Context().run(_run, program, stack, config, project, preview, stack_outputs or {},
                                    secret_keys)
    if run.error is not None and not keep_error:
        raise run.error
    return run


def _run(program: Callable[[], Any], stack: str, config: dict[str, Any], project: str, preview: bool,
         stack_outputs: dict[str, dict[str, Any]], secret_keys: tuple[str, ...]) -> Run:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    run = Run()
    try:
        mocks = _Mocks(stack_outputs)
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview,
                                 monitor=_RecordingMonitor(mocks, run))
        pulumi.runtime.set_all_config({f"{project}:{key}": value if isinstance(value, str) else json.dumps(value)
                                       for key, value in config.items()},
                                      [f"{project}:{key}" for key in secret_keys])

        def body() -> None:
            run.result = program()

        pulumi.runtime.test(body)()
    except Exception as error:  # noqa: BLE001 (handed back to the caller)
        run.error = error
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return run
