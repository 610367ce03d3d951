"""The rollback plan of one stack's preview: what each service's change does and the commands that undo it.

Everything comes from the steps of ``pulumi preview --json`` (old and new inputs of every resource), never from
the stack file, so the plan describes what the engine is about to do rather than what the config was meant to do:
the active Service's selector gives the colour that takes traffic, each colour's Deployment gives its image, and
the public gateway's KrakenD file gives the canary weight. Since Pulumi has no rollback command, rolling back is a
config change back to the old values and another ``pulumi up``; replaced, deleted or created resources are not
undone that way, so they are flagged at the top of the plan. Except a ConfigMap named after its content (the
gateway's config, the retention job's list): new content is a new ConfigMap by design, created before the old one
goes, so it and what mounts it are listed with the change that gave them new content, when that change explains all
of it (a gateway's new file differs only in the weighted hosts of the canaries that moved). A database migration is
never undone (migrations are forward-only), so a service that migrates gets no command restoring an image older than
its migrations, and the plan says why. Traffic comes back first, in an update of its own: images follow in a later
one, since the engine would otherwise roll a colour before the switch back, and the release policy judges an image
change as a release where it lets a rollback through at any time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from semver import Version

from core import labels
from core.blue_green import service_name
from core.content_address import content_address_prefix
from core.gateway import gateway_name
from core.gateway_workload import CHECKSUM_ANNOTATION, CONFIG_FILE, config_map_prefix
from core.images import build_version
from core.migrations import MIGRATION_TIER
from core.settings import COLOURS

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
JOB = "kubernetes:batch/v1:Job"
STACK_RESOURCE = "pulumi:pulumi:Stack"
# The ConfigMaps of the gateways' KrakenD files: the public gateway's carries the canary weights, the preview
# gateway's only reaches standbys.
GATEWAY_CONFIG_MAPS = tuple(config_map_prefix(gateway_name(role)) for role in ("public", "preview"))
WEIGHTED_CONFIG_MAP = GATEWAY_CONFIG_MAPS[0]
UNCHANGED_OPS = ("same", "read", "refresh")
REPLACEMENT_OPS = ("replace", "create-replacement", "delete-replaced")
# How the engine names a step that is not an in-place update, worded for a reviewer.
FLAGGED = {"create": "created", "delete": "deleted", "replace": "replaced", "create-replacement": "replaced",
           "delete-replaced": "replaced", "read-replacement": "replaced", "discard": "forgotten",
           "discard-replaced": "replaced", "import": "imported", "import-replacement": "replaced"}


class PreviewError(ValueError):
    """Input that is not the JSON of `pulumi preview --json` for the named stack."""


class FailedPreview(Exception):
    """A preview the engine ended with errors (a policy refusal, invalid config, a program that raised): its steps
    stop where the program did, so they would read as "no changes". ``errors`` are the engine's messages."""

    def __init__(self, stack: str, errors: list[str]) -> None:
        super().__init__(f"the preview of stack {stack!r} failed, so there is no rollback plan; the engine's errors:")
        self.stack, self.errors = stack, errors


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)


class Step(BaseModel):
    """One resource step of the preview; only the fields the plan reads."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    op: str
    urn: str
    old: _State | None = Field(None, alias="oldState")
    new: _State | None = Field(None, alias="newState")
    replace_reasons: list[str] = Field(default_factory=list, alias="replaceReasons")

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def type(self) -> str:
        return (self.new or self.old or _State()).type or self.urn.rsplit("::", 2)[-2].rsplit("$", 1)[-1]

    @property
    def stack(self) -> str:
        return self.urn.split("::", 1)[0].rsplit(":", 1)[-1]

    @property
    def old_inputs(self) -> dict[str, Any]:
        return self.old.inputs if self.old else {}

    @property
    def new_inputs(self) -> dict[str, Any]:
        return self.new.inputs if self.new else {}


class Diagnostic(BaseModel):
    """One message of the engine or the program; severity "error" means the preview failed."""

    model_config = ConfigDict(extra="ignore")
    message: str = ""
    severity: str = ""


class Preview(BaseModel):
    model_config = ConfigDict(extra="ignore")
    steps: list[Step] = Field(default_factory=list)
    diagnostics: list[Diagnostic] = Field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [item.message.strip() for item in self.diagnostics if item.severity == "error"]


@dataclass(frozen=True)
class Change:
    """An old and a new value of one setting; ``key`` is its `pulumi config set --path` key."""

    key: str
    old: Any
    new: Any


@dataclass
class ServiceChange:
    """What the preview does to one service, and which colour is active and what each runs after the update."""

    service: str
    switch: Change | None = None
    images: list[Change] = field(default_factory=list)
    canary: Change | None = None
    images_after: dict[str, str] = field(default_factory=dict)
    active_after: str | None = None
    also_updated: list[str] = field(default_factory=list)
    migration: Change | None = None  # key: the Job's name; old and new: the images whose migrations ran
    migrated: Version | None = None  # the version the stack last migrated the service to, before this update

    @property
    def changed(self) -> bool:
        return bool(self.switch or self.images or self.canary or self.migration)

    @property
    def finishes_canary(self) -> bool:
        """A canary promotion: the standby that had all the gateway traffic becomes active, the weight goes to 0."""
        return bool(self.switch and self.canary and self.canary.old == 100 and self.canary.new == 0)

    @property
    def restores(self) -> list[Change]:
        """The images to put back. None after this update's migration Job, and none older than the stack's last
        migration: migrations only move forward, so the program refuses such an image."""
        return [] if self.migration else [image for image in self.images if not self.behind_migrations(image.old)]

    def behind_migrations(self, image: str | None) -> bool:
        version = _build_version(image)
        return self.migrated is not None and version is not None and version < self.migrated

    @property
    def rollback(self) -> list[list[Change]]:
        """The updates that undo the change, in order: traffic first (the switch back and the canary weight), then
        the images, in a later update of their own.

        In one update the engine would roll a colour onto its old image before the Services move traffic back (they
        depend on both Deployments), and the release policy, which lets a rollback through at any time, judges an
        image change as a release: outside Prod's train it would refuse the switch back with it. After a switch
        the weight stays 0: the old colour still runs what it ran and takes all traffic back. The policy refuses a
        switch with a weight above 0 in the same update, and after a finished canary weight 100 would keep the
        gateway's traffic on the new colour; a canary the switch cut short is started again by `release canary`.
        """
        canary = Change(self.canary.key, 0, 0) if self.switch and self.canary else self.canary
        traffic = [change for change in (self.switch, canary) if change is not None]
        ahead = self.restores_ahead
        return [update for update in (ahead, traffic, [i for i in self.restores if i not in ahead]) if update]

    @property
    def restores_ahead(self) -> list[Change]:
        """The image of the colour traffic goes back to, when this change also gave that colour a new build: put
        back while it is still the standby, in an update of its own before the switch, or traffic would come back
        to a build that never served."""
        back_to = self.switch.old if self.switch else None
        return [image for image in self.restores if back_to and image.key == f"services.{self.service}.{back_to}.image"]


@dataclass(frozen=True)
class Unexplained:
    """A change the plan cannot undo with a config value: flagged (created, replaced...) or an other update."""

    what: str
    type: str
    name: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class RemovedService:
    """A service the update takes out of the stack: both colours' Deployments are deleted. ``active``: the colour
    that took traffic; ``images``: colour -> what it ran."""

    service: str
    active: str | None
    images: dict[str, str | None]


@dataclass
class RollbackPlan:
    stack: str
    services: list[ServiceChange]
    flagged: list[Unexplained]
    other: list[Unexplained]
    removed: list[RemovedService] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.services or self.flagged or self.other or self.removed)


def parse_preview(text: str, stack: str) -> Preview:
    """The preview, checked to be one of ``stack`` and to have succeeded; a bad file is one line naming what is
    wrong, a failed preview a FailedPreview with the engine's errors."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise PreviewError(f"the preview is not JSON ({error}); pass the output of `pulumi preview --json`") from None
    if not isinstance(document, dict):
        raise PreviewError("the preview is not a JSON object; pass the output of `pulumi preview --json`")
    try:
        preview = Preview.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"]))
        what = "step" if first["loc"][0] == "steps" else "diagnostic"
        raise PreviewError(f"the preview has a bad {what} at {where}: {first['msg']}") from None
    stacks = sorted({step.stack for step in preview.steps})
    if stacks and stacks != [stack]:
        raise PreviewError(f"the preview is of stack {', '.join(stacks)}, not {stack!r}")
    if preview.errors:
        raise FailedPreview(stack, preview.errors)
    return preview


def rollback_plan(stack: str, preview: Preview) -> RollbackPlan:
    """Classify every step: a colour switch, an image change, a canary weight, or something to flag."""
    services = _before(preview)
    # By name: the engine runs steps in parallel, so their order in the preview varies from run to run.
    steps = sorted((step for step in preview.steps if step.type != STACK_RESOURCE and step.op not in UNCHANGED_OPS),
                   key=lambda step: (step.name, step.urn))
    for step in steps:  # services the stack outputs do not name yet (a new service) are known by their Deployments
        found = _colour_deployment(step)
        if found:
            services.setdefault(found[0], ServiceChange(found[0]))
    # Each content-addressed ConfigMap's (old name, new name), and the services whose change explains its new content:
    # a gateway's, set as its step is read; any other's (the retention job's list), those with new images.
    renamed: _Renamed = {
        (_name(step.old_inputs), _name(step.new_inputs)): None for step in steps if _content_addressed(step)}
    flagged, other, consequences = _classify(steps, services, renamed)
    changed = _attribute(consequences, services, renamed, other)
    for change in changed.values():
        change.active_after = change.switch.new if change.switch else change.active_after
        change.images_after.update({image.key.split(".")[2]: image.new for image in change.images})
    return RollbackPlan(stack, [changed[name] for name in sorted(changed)],
                        _unique(flagged), sorted(other, key=lambda item: item.name), _removed(steps, services))


# An update that follows a service's change: its step, its changed fields, and whether that change explains them all.
_Consequence = tuple[Step, list[str], bool]
# A content-addressed ConfigMap's (old name, new name) -> the services whose change explains its new content.
_Renamed = dict[tuple[str | None, str | None], list[str] | None]


def _classify(steps: list[Step], services: dict[str, ServiceChange],
              renamed: _Renamed) -> tuple[list[Unexplained], list[Unexplained], list[_Consequence]]:
    """Each step once: what a service's switch, images or canary weight explains is recorded on that service, a
    migration Job too. Returns what is left: the steps to flag (not updates), the updates no service explains,
    and the updates that belong to whichever service they follow, known only once every step is read."""
    flagged: list[Unexplained] = []
    other: list[Unexplained] = []
    consequences: list[_Consequence] = []
    for step in steps:
        migrating = _migrating_service(step)
        if migrating:  # a new image's migration Job: expected with a promotion, not a surprise to flag
            services.setdefault(migrating, ServiceChange(migrating)).migration = Change(
                _name(step.new_inputs) or step.name, _image(step.old_inputs, migrating),
                _image(step.new_inputs, migrating))
            continue
        # New content in a content-addressed ConfigMap (the gateway's config, the retention job's list) is a new
        # ConfigMap by design (core.content_address): created before the old goes, so it is their update.
        updated = step.op == "update" or (step.op in REPLACEMENT_OPS and _content_addressed(step))
        if not updated:
            flagged.append(Unexplained(FLAGGED.get(step.op, step.op), step.type, step.name,
                                       tuple(step.replace_reasons)))
            if not (step.old and step.new):
                continue  # a replacement also changes values: read on
        fields = _changed_fields(step.old_inputs, step.new_inputs)
        leftover = _explain(step, fields, services, renamed)
        if leftover is None or not updated:
            continue
        # A colour's Deployment changes with its image alone (a switch or a canary never touches it): anything else
        # on it is a change of its own, never one that rides along with its service's.
        if leftover and (leftover != fields or _colour_deployment(step)):
            other.append(Unexplained("updated", step.type, step.name, tuple(leftover)))
        else:
            consequences.append((step, fields, not leftover))
    return flagged, other, consequences


def _attribute(consequences: list[_Consequence], services: dict[str, ServiceChange], renamed: _Renamed,
               other: list[Unexplained]) -> dict[str, ServiceChange]:
    """The services that change, each with the updates that move with it; an update that follows no changed
    service joins ``other``."""
    changed = {name: change for name, change in services.items() if change.changed}
    imaged = [name for name, change in changed.items() if change.images]
    carried = {pair: imaged if carriers is None else carriers for pair, carriers in renamed.items()}
    for step, fields, explained in consequences:
        owner = _owner(step.name, services)
        # A resource named after a service moves with it. A content-addressed ConfigMap and what mounts it move with
        # the changes that explain its content: the gateway's config (its pods roll) with canary steps, the
        # retention job's with images.
        owners = [owner] if owner else _carriers(step, carried) if explained else []
        if owners and all(name in changed for name in owners):
            for name in owners:
                changed[name].also_updated.append(f"`{step.name}` ({_kind(step.type)})")
        else:
            other.append(Unexplained("updated", step.type, step.name, tuple(fields)))
    return changed


def _removed(steps: list[Step], services: dict[str, ServiceChange]) -> list[RemovedService]:
    """Services whose two colours' Deployments the update deletes, with what they ran and which took traffic (from
    the last outputs, else from the deleted active Service's selector)."""
    deleted: dict[str, dict[str, str | None]] = {}
    active: dict[str, str] = {}
    for step in steps:
        if step.op != "delete":
            continue
        found = _colour_deployment(step)
        if found:
            deleted.setdefault(found[0], {})[found[1]] = _image(step.old_inputs, found[0])
        routing = _routing(step.old_inputs) if step.type == SERVICE else None
        if routing and routing[0][1] == "active":
            active[routing[0][0]] = routing[1]
    return [RemovedService(name, services[name].active_after if name in services and services[name].active_after
                           else active.get(name), dict(sorted(images.items())))
            for name, images in sorted(deleted.items()) if set(images) == set(COLOURS)]


def _before(preview: Preview) -> dict[str, ServiceChange]:
    """Each service's active colour and images before the update, from the stack's outputs in the preview.

    Only changed resources appear as steps, so what an unchanged colour runs is read from the outputs the last
    update left (the `pulumi:pulumi:Stack` step's old state); a stack never updated has none.
    """
    services: dict[str, ServiceChange] = {}
    for step in preview.steps:
        if step.type != STACK_RESOURCE or step.old is None:
            continue
        outputs = step.old.outputs.get("services")
        migrations = step.old.outputs.get("migrations")
        migrations = migrations if isinstance(migrations, dict) else {}
        for name, service in (outputs if isinstance(outputs, dict) else {}).items():
            if not isinstance(service, dict):
                continue
            colours = service.get("colours") if isinstance(service.get("colours"), dict) else {}
            services[name] = ServiceChange(
                name, active_after=service.get("active_colour"),
                images_after={colour: value["image"] for colour, value in colours.items()
                              if isinstance(value, dict) and isinstance(value.get("image"), str)},
                migrated=_migrated(migrations.get(name)))
    return services


def _migrated(record: Any) -> Version | None:
    """The version of a service's migration record in the outputs (`migrations.<service>`), else its image's."""
    if not isinstance(record, dict):
        return None
    version = record.get("version")
    if isinstance(version, str) and Version.is_valid(version):
        return Version.parse(version)
    return _build_version(record.get("image")) if isinstance(record.get("image"), str) else None


def _explain(step: Step, fields: list[str], services: dict[str, ServiceChange],
             renamed: dict[tuple[str | None, str | None], list[str] | None]) -> list[str] | None:
    """Records what the plan understands of an update; returns the fields it does not explain (None: fully, []: as
    a consequence of another change)."""
    found = _colour_deployment(step)
    if found:
        service, colour = found
        old, new = _image(step.old_inputs, service), _image(step.new_inputs, service)
        if old == new:
            return fields
        services[service].images.append(Change(f"services.{service}.{colour}.image", old, new))
        return _not_from_image(step, old, new) or None
    if step.type == SERVICE:
        old, new = _routing(step.old_inputs), _routing(step.new_inputs)
        if old and new and old[0] == new[0] and old[1] != new[1]:
            service, role = old[0]
            rest = [path for path in fields if path != f"spec.selector.{labels.COLOR}"]
            if role == "active":
                switch = Change(f"services.{service}.active", old[1], new[1])
                services.setdefault(service, ServiceChange(service)).switch = switch
                return rest or None
            return rest  # the preview Service follows the switch to the other colour
        return fields
    if _is_gateway_config(step):
        moved: list[str] = []
        if content_address_prefix(_name(step.new_inputs) or "") == WEIGHTED_CONFIG_MAP:
            old, new = _weights(step.old_inputs, services), _weights(step.new_inputs, services)
            moved = [service for service in sorted(new) if old.get(service, 0) != new[service]]
        for service in moved:
            services[service].canary = Change(f"services.{service}.canary.weight", old.get(service, 0), new[service])
        rest = _unweighted_changes(step, moved)
        if _content_addressed(step):
            renamed[(_name(step.old_inputs), _name(step.new_inputs))] = [] if rest else moved
        if rest:
            return rest  # a gateway setting in the same file: no service's change
        if moved:
            return None
    if _content_addressed(step):
        return []  # new content: it moves with what it holds
    if fields and all(_follows(change, renamed) for change in _changes(step.old_inputs, step.new_inputs)):
        return []  # it mounts a content-addressed ConfigMap and moves to the new one (a gateway's pods roll)
    return fields


def _is_gateway_config(step: Step) -> bool:
    return step.type == CONFIG_MAP and content_address_prefix(_name(step.new_inputs) or "") in GATEWAY_CONFIG_MAPS


def _unweighted_changes(step: Step, moved: list[str]) -> list[str]:
    """What differs in a gateway's KrakenD file besides the weights of the ``moved`` canaries, as dotted paths.

    A weight is how often each colour's host repeats in a backend's list, so those lists are compared as their
    distinct hosts with the preview Service read as the active one: a new port or namespace still shows.
    """
    old, new = _krakend(step.old_inputs), _krakend(step.new_inputs)
    if old is None or new is None:
        return [] if old == new else [f"data.{CONFIG_FILE}"]
    for config in (old, new):
        for endpoint in config.get("endpoints", []):
            for backend in endpoint.get("backend", []):
                hosts = [_as_active(host, moved) for host in backend.get("host", [])]
                backend["host"] = list(dict.fromkeys(hosts))
    return [f"data.{CONFIG_FILE}.{path}" for path, _, _ in _changes(old, new)]


def _as_active(host: str, services: list[str]) -> str:
    """A preview Service's URL as its active Service's, for the ``services`` whose canary moved."""
    label = (urlsplit(host).hostname or "").split(".")[0]
    for service in services:
        if label == service_name(service, "preview"):
            return host.replace(f"//{label}.", f"//{service_name(service, 'active')}.", 1)
    return host


def _krakend(inputs: dict[str, Any]) -> dict[str, Any] | None:
    try:
        config = json.loads((inputs.get("data") or {}).get(CONFIG_FILE, ""))
    except ValueError:
        return None
    return config if isinstance(config, dict) else None


def _content_addressed(step: Step) -> bool:
    """A ConfigMap named after its content (core.content_address): immutable, and its old and new names differ only
    in the checksum. Known by that rule rather than by name, so a new one needs no entry here."""
    old, new = _name(step.old_inputs) or "", _name(step.new_inputs) or ""
    prefix = content_address_prefix(old)
    return (step.type == CONFIG_MAP and prefix is not None and old != new and content_address_prefix(new) == prefix
            and step.old_inputs.get("immutable") is True and step.new_inputs.get("immutable") is True)


def _carriers(step: Step, renamed: dict[tuple[str | None, str | None], list[str]]) -> list[str]:
    """The services whose change explains a content-addressed ConfigMap's new content, or that of every one a
    resource moves to; none when one of them has content no service explains."""
    pairs = [(_name(step.old_inputs), _name(step.new_inputs))] if _content_addressed(step) else [
        (old, new) for _, old, new in _changes(step.old_inputs, step.new_inputs) if (old, new) in renamed]
    carriers = [renamed[pair] for pair in pairs]
    return [] if not carriers or not all(carriers) else sorted({name for names in carriers for name in names})


def _follows(change: tuple[str, Any, Any], renamed: dict[tuple[str | None, str | None], Any]) -> bool:
    """A value that changes only because a content-addressed ConfigMap got a new name: a reference to that name,
    or the gateway's checksum annotation (the checksum the name is made of)."""
    path, old, new = change
    if path.endswith(f".annotations.{CHECKSUM_ANNOTATION}"):
        return bool(renamed)
    return isinstance(old, str) and isinstance(new, str) and (old, new) in renamed


def _colour_deployment(step: Step) -> tuple[str, str] | None:
    """(service, colour) of a service's per-colour Deployment, known by its fixed selector {app, color}."""
    if step.type != DEPLOYMENT:
        return None
    inputs = step.new_inputs or step.old_inputs
    match = inputs.get("spec", {}).get("selector", {}).get("matchLabels", {})
    if set(match) == {labels.APP, labels.COLOR} and match[labels.COLOR] in COLOURS:
        return match[labels.APP], match[labels.COLOR]
    return None


def _migrating_service(step: Step) -> str | None:
    """The service whose migration Job (core.migrations: labelled with the migration tier) this step creates."""
    if step.type != JOB or step.new is None:
        return None
    job_labels = (step.new_inputs.get("metadata") or {}).get("labels") or {}
    return job_labels.get(labels.APP) if job_labels.get(labels.TIER) == MIGRATION_TIER else None


def _image(inputs: dict[str, Any], service: str) -> str | None:
    containers = inputs.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    for container in containers:
        if container.get("name") == service:
            return container.get("image")
    return containers[0].get("image") if containers else None


def _routing(inputs: dict[str, Any]) -> tuple[tuple[str, str], str] | None:
    """((service, role), colour) of a routing Service: `<service>` is active, `<service>-preview` the standby."""
    selector = inputs.get("spec", {}).get("selector") or {}
    if set(selector) != {labels.APP, labels.COLOR}:
        return None
    service = selector[labels.APP]
    for role in ("active", "preview"):
        if _name(inputs) == service_name(service, role):
            return (service, role), selector[labels.COLOR]
    return None


def _weights(inputs: dict[str, Any], services: dict[str, ServiceChange]) -> dict[str, int]:
    """Per service, the percentage of its gateway hosts that are its preview Service (the standby colour)."""
    config = _krakend(inputs) or {}
    weights: dict[str, int] = {}
    for endpoint in config.get("endpoints", []):
        for backend in endpoint.get("backend", []):
            hosts = [urlsplit(host).hostname or "" for host in backend.get("host", [])]
            for service in services:
                mine = [host.split(".")[0] for host in hosts
                        if host.split(".")[0] in (service_name(service, "active"), service_name(service, "preview"))]
                if mine:
                    weights[service] = round(100 * mine.count(service_name(service, "preview")) / len(mine))
    return weights


def _owner(name: str, services: dict[str, ServiceChange]) -> str | None:
    """The service whose name is part of a resource's name (`prod-alerting-payin-api-rules`)."""
    for service in sorted(services, key=len, reverse=True):
        if f"-{service}-" in f"-{name}-":
            return service
    return None


def _not_from_image(step: Step, old: str | None, new: str | None) -> list[str]:
    """The fields of a colour's Deployment that its new image does not explain. The pod template carries the image,
    and its version in labels and environment: a value that is the old one with the old image, tag or version put
    to the new ones follows the image; a new CPU limit or probe in the same update does not."""
    names = [(old, new)]
    if old and new:
        names.append((_tag(old), _tag(new)))
        names += [(str(a), str(b)) for a, b in [(_build_version(old), _build_version(new))] if a and b]
    def follows(before: Any, after: Any) -> bool:
        if not isinstance(before, str) or not isinstance(after, str):
            return False
        for name, replacement in names:
            if name and replacement:
                before = before.replace(name, replacement)
        return before == after
    return [path for path, before, after in _changes(step.old_inputs, step.new_inputs) if not follows(before, after)]


def _changed_fields(old: Any, new: Any) -> list[str]:
    """Dotted paths of the inputs that differ; engine-internal keys (`__provider`) are left out."""
    return [path for path, _, _ in _changes(old, new)]


def _changes(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, old value, new value) of each input that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        changed = []
        for key in sorted(set(old) | set(new), key=str):
            if str(key).startswith("__"):
                continue
            changed += _changes(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return changed
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [found for index, (a, b) in enumerate(zip(old, new)) for found in _changes(a, b, f"{path}[{index}]")]
    return [] if old == new else [(path or "(whole resource)", old, new)]


def _name(inputs: dict[str, Any]) -> str | None:
    return (inputs.get("metadata") or {}).get("name")


def _kind(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1]


def _unique(items: list[Unexplained]) -> list[Unexplained]:
    """A replacement shows as several steps of one resource; report it once. A colour's Deployment and its
    PodDisruptionBudget share a name, so a resource is its type and name."""
    seen: dict[tuple[str, str], Unexplained] = {}
    for item in items:
        seen.setdefault((item.type, item.name), item)
    return sorted(seen.values(), key=lambda item: (item.what, item.name, item.type))


def render_markdown(plan: RollbackPlan) -> str:
    """The plan as the Markdown posted on pull requests and in deployment summaries."""
    lines = [f"### Rollback plan: `{plan.stack}`", ""]
    if plan.empty:
        lines.append(f"No changes to `{plan.stack}`: nothing to roll back.")
        return "\n".join(lines) + "\n"
    if plan.flagged:
        lines += ["> [!WARNING]",
                  f"> **{len(plan.flagged)} resource(s) created, replaced or deleted.** These are not in-place "
                  "updates: a replacement deletes and recreates the resource (a fixed name means delete first), "
                  "and rolling back repeats that. Check each before merging.", ""]
        lines += [f"- **{item.what.upper()}** `{item.name}` ({_kind(item.type)})"
                  + (f", because of {_fields(item.fields)}" if item.fields else "") for item in plan.flagged]
        lines.append("")
    for removed in plan.removed:
        lines += _removed_section(plan.stack, removed)
    for change in plan.services:
        lines += _service_section(plan.stack, change)
    if plan.other:
        lines += ["#### Other changes", "",
                  "No config value of a service restores these: roll them back by reverting this change and running "
                  "`pulumi up` again.", ""]
        lines += [f"- `{item.name}` ({_kind(item.type)}): {_fields(item.fields)}" for item in plan.other]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _service_section(stack: str, change: ServiceChange) -> list[str]:
    lines = [f"#### {change.service}", ""]
    before = {image.key.split(".")[2]: image.old for image in change.images}
    if change.switch:
        old, new = change.switch.old, change.switch.new
        old_image, new_image = before.get(old, change.images_after.get(old)), change.images_after.get(new)
        stays = (f"{old} keeps running as the standby" if old not in before else
                 f"{old} becomes the standby, with a new image (below)")
        lines.append(f"- **Colour switch**: traffic moves from **{old}**{_shown(old_image)} to **{new}**"
                     f"{_shown(new_image)}; {stays}.{_direction(old_image, new_image)}")
    for image in change.images:
        colour = image.key.split(".")[2]
        if change.active_after is None:
            role = ""
        elif change.active_after == colour:
            role = ", the colour that takes traffic,"
        else:
            role = f", the standby ({change.active_after} takes traffic),"
        effect = ("its pods roll onto the new image while serving" if change.active_after == colour else
                  "traffic stays where it is" if change.active_after else "")
        lines.append(f"- **Promotion**: {colour}{role} changes image from `{image.old}` to `{image.new}`"
                     f"{'; ' + effect if effect else ''}.{_direction(image.old, image.new)}")
    if change.canary:
        lines.append(_canary_line(change, change.canary))
    if change.migration:
        version = _version(change.migration.new)
        lines.append(f"- **Migration**: `{change.migration.key}` applies the database migrations of "
                     f"`{change.migration.new}` before the colour updates. Migrations are forward-only: rolling "
                     f"back does not undo them, and no image older than {version} may be deployed afterwards.")
    if change.also_updated:
        lines.append(f"- Updated with it: {', '.join(change.also_updated)}.")
    lines.append("")
    if change.migration and change.images:
        colours = " and ".join(image.key.split(".")[2] for image in change.images)
        lines += [f"The image is not restored: {colours} keeps `{change.migration.new}`, or gets a fixed build "
                  f"({_version(change.migration.new)} or later). The migrated schema stays backward compatible, so "
                  "the other colour serves it as before.", ""]
    for image in [] if change.migration else change.images:
        if change.behind_migrations(image.old):
            colour = image.key.split(".")[2]
            lines += [f"The image `{image.old}` is not put back on {colour}: {stack} last migrated {change.service} "
                      f"to {change.migrated} and migrations only move forward, so the program refuses an older "
                      f"image; {colour} keeps `{image.new}`, or gets a fixed build ({change.migrated} or later).", ""]
    updates = change.rollback
    if not updates:
        return lines + [f"Nothing to switch back: traffic stays on **{change.active_after}**.", ""] \
            if change.active_after else lines
    ahead = 1 if change.restores_ahead else 0  # the update before the traffic's, if any
    for number, update in enumerate(updates):
        restore = " and ".join(_restore(item) for item in update)
        if number < ahead:
            lines.append(f"To roll back, first {restore}, in an update of its own: this change gave that colour a "
                         "build that never served, and traffic must not come back to it:")
        elif number == ahead:
            lines.append(f"{'Then' if ahead else 'To roll back,'} {restore}"
                         + (", in an update of its own:" if len(updates) > number + 1 else ":"))
        else:
            lines.append(f"Then, once traffic is back, {restore} in a later update: the release policy judges an "
                         "image change as a release (held to the release train where the stack has one), and in the "
                         "same update as the traffic the engine would roll that colour's pods first:")
        lines += ["", "```sh", f"pulumi stack select {stack}"]
        lines += [f"pulumi config set --path '{item.key}' {item.old}" for item in update]
        lines += ["pulumi up", "```", ""]
    return lines


def _removed_section(stack: str, removed: RemovedService) -> list[str]:
    ran = "; ".join(f"{colour} ran `{image or 'an unknown image'}`"
                    + (" and took traffic" if colour == removed.active else "")
                    for colour, image in removed.images.items())
    lines = [f"#### {removed.service} (removed)", "",
             f"- **Removed**: both colours' Deployments go, with the Services that route to them: {ran}.", "",
             "Only adding it back restores a removed service, and that is a new change: the release policy judges "
             "it as a service new to the stack, and its resources are created anew. Its other settings (replicas, "
             "a canary) are in the stack file's history. To add it back as it ran:", "",
             "```sh", f"pulumi stack select {stack}"]
    if removed.active:
        lines.append(f"pulumi config set --path 'services.{removed.service}.active' {removed.active}")
    lines += [f"pulumi config set --path 'services.{removed.service}.{colour}.image' {image}"
              for colour, image in removed.images.items() if image]
    return lines + ["pulumi up", "```", ""]


def _canary_line(change: ServiceChange, canary: Change) -> str:
    """The weight is the standby's share, so with a switch the old weight was on the colour that now takes traffic."""
    traffic = f"of {change.service}'s gateway traffic"
    standby = next((colour for colour in COLOURS if change.active_after and colour != change.active_after), None)
    who = f"{standby}, the standby{_shown(change.images_after.get(standby))}," if standby else "the standby colour"
    if change.finishes_canary and change.switch:
        return (f"- **Canary finished**: {change.switch.new}, which had 100% {traffic} as the standby, now takes it "
                f"as the active colour; {change.switch.old}, the new standby"
                f"{_shown(change.images_after.get(change.switch.old))}, gets 0%.")
    if change.switch:
        return (f"- **Canary**: {who} gets {canary.new}% {traffic}; before the switch {change.switch.new}, then the "
                f"standby, had {canary.old}%.")
    return (f"- **Canary**: {who} gets {canary.new}% {traffic}, "
            f"{'up' if canary.new > canary.old else 'down'} from {canary.old}%.")


def _fields(paths: tuple[str, ...], most: int = 8) -> str:
    more = f" and {len(paths) - most} more" if len(paths) > most else ""
    return ", ".join(f"`{path}`" for path in paths[:most]) + more


def _shown(image: str | None) -> str:
    return f" (`{image}`)" if image else ""


def _direction(old: str | None, new: str | None) -> str:
    """Whether a change goes to a newer or an older build, when both images follow the tag rule."""
    versions = [_build_version(old), _build_version(new)]
    if None in versions or versions[0] == versions[1]:
        return ""
    older = versions[1] < versions[0]
    return f" {'Back to an older' if older else 'A newer'} version: {versions[0]} -> {versions[1]}."


def _tag(image: str) -> str:
    return image.split("@")[0].rsplit(":", 1)[-1]


def _build_version(image: str | None) -> Any:
    """The semantic version of an image that follows the tag rule, else None."""
    return build_version(_tag(image)) if image else None


def _version(image: str | None) -> str:
    return str(_build_version(image) or "this one")


def _restore(item: Change) -> str:
    if item.key.endswith(".active"):
        return f"switch traffic back to **{item.old}**"
    if item.key.endswith(".image"):
        return f"restore {item.key.split('.')[2]}'s image `{item.old}`"
    if item.old == item.new:  # a finished canary's: the old colour takes all traffic back
        return f"keep the canary weight at {item.old}%"
    return f"set the canary weight back to {item.old}%"
