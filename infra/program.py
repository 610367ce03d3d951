"""The program: Pulumi.<stack>.yaml + catalogue.yaml -> validated settings -> Environment -> stack outputs."""

from __future__ import annotations

import functools
import gc
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi.runtime import config as runtime_config

from components.alerting import read_secrets
from components.environment import Environment
from core.alerting.events import applied_states
from core.alerting.routing import PLACEHOLDER_HOST
from core.alerting.settings import SECRET_KEYS, load_alerting
from core.catalogue import CATALOGUE_FILE, Catalogue, catalogue_path
from core.errors import ConfigError, together
from core.migrations import DATABASES_KEY, PLACEHOLDER_URL, check_databases, previous_releases
from core.migrations import plan as migration_plan
from core.outputs import StackOutputs, stack_outputs
from core.program_digest import UnreadableCheckout, program_digest
from core.registry import digests as digest_config
from core.registry import settings as retention_config
from core.registry.pinning import pin, pinned
from core.settings import KNOWN_KEYS, PROJECT, StackSettings, load_settings
from core.validation import plain_text_entries, refuse_needless_secrets, refuse_plain_text_secrets, structured
from infra import release_policy
from infra.image_digests import pin_images

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / CATALOGUE_FILE
RENDER_DIR_VARIABLE = "RELEASE_INFRA_RENDER_DIR"  # manifests go to <dir>/<stack>
# Config keys that hold credentials: each must be set with `pulumi config set --secret`.
SECRET_CONFIG_KEYS = (*SECRET_KEYS, retention_config.PASSWORD, digest_config.PASSWORD, DATABASES_KEY)


@functools.cache
def freeze_imports() -> None:
    """Keep what the imports made (SDK, provider types, models: about 110 k objects) out of every collection.

    Until its registrations end, a program keeps each resource's futures and Outputs alive, so the collector's
    full passes grow with the stack, and each would rescan the imports too (docs/benchmarks.md). Once per process:
    what a later run leaves behind is collected as usual."""
    gc.freeze()


def quiet_sdk_debug() -> None:
    """Drop the SDK's debug lines instead of sending each to the engine.

    The SDK sends about four per resource ("registering resource", "resource registration successful", ...), each
    a blocking RPC on the event loop that registers the resources: a tenth of a `pulumi up` of a 20-service stack
    (docs/benchmarks.md). The engine shows them only under `--debug`; `-v=9 --logtostderr` still shows every
    registration from the engine's side. Warnings and errors go to the engine as before."""
    pulumi.log.debug = _no_debug


def _no_debug(*_args: Any, **_kwargs: Any) -> None:
    return None


def main(now: Callable[[], datetime] | None = None, catalogue_file: Path | None = None) -> StackOutputs:
    """Validate everything first: a bad value or a change the release policy refuses fails the update before a
    single resource is registered. ``now`` defaults to the real time (see release_policy.current_time)."""
    freeze_imports()
    quiet_sdk_debug()
    stack = pulumi.get_stack()
    catalogue_file = catalogue_file or catalogue_path(ROOT, os.environ)
    config = stack_config()
    encrypted = {key for key in config if runtime_config.is_config_secret(f"{PROJECT}:{key}")}  # set with --secret
    try:
        moment = release_policy.current_time(now)
        catalogue = Catalogue.load(catalogue_file)
        credentials = {key: structured(config[key]) for key in SECRET_CONFIG_KEYS if key in config}
        refuse_plain_text_secrets(stack, f"{PROJECT}:", credentials, encrypted,
                                  plain_text_entries(read_stack_file(stack), f"{PROJECT}:", credentials))
        refuse_needless_secrets(stack, f"{PROJECT}:", encrypted, SECRET_CONFIG_KEYS, KNOWN_KEYS)
        settings = load_settings(stack, config, catalogue, moment)
        live = settings.cluster is not None
        alerting, retention, digests, database_urls = together(
            f'stack "{stack}"',
            lambda: load_alerting(stack, settings.environment, config.get("alerting"),
                                  {key: config[key] for key in SECRET_KEYS if key in config}, live=live),
            lambda: retention_config.load_retention(
                stack, config.get(retention_config.KEY),
                {key: config[key] for key in (retention_config.PASSWORD,) if key in config}, settings.registry,
                live=live),
            lambda: digest_config.load_image_digests(
                stack, config.get(digest_config.KEY),
                {key: config[key] for key in (digest_config.PASSWORD,) if key in config}, settings.registry,
                live=live),
            lambda: check_database_urls(settings, catalogue, config.get(DATABASES_KEY)))
        previous = release_policy.check(settings, config, catalogue, moment)
        job_image = (retention_config.KEY, "image")
        pins = pin_images(settings, digests, previous, {job_image: retention.image} if retention else None)
        if retention:
            retention = retention.model_copy(update={"image": pinned(retention.image, pins.get(job_image))})
        migrations = migration_plan(settings, catalogue, previous_releases(previous), pins)
        databases = load_databases(settings, catalogue, database_urls)
        program_digest()  # for the outputs; a checkout git cannot read fails here, in one line
    except ConfigError as error:
        raise pulumi.RunError(str(error.redacted(f"{PROJECT}:", encrypted))) from None
    except UnreadableCheckout as error:
        raise pulumi.RunError(f"cannot tell which program this is: {error}") from None
    provider = kubernetes_provider(settings)
    if not live:
        warn_credentials_withheld(settings, [
            *(key for key in sorted(credentials) if key not in (digest_config.PASSWORD, DATABASES_KEY)),
            *(f"{DATABASES_KEY}.{name}" for name in sorted(database_urls))], retention=retention is not None,
            migrating=bool(databases), announcing=alerting.alertmanager_url is not None)
        alerting = alerting.model_copy(update={"alertmanager_url": None})
    outputs = stack_outputs(settings, previous, migrations, pins, now=moment)  # type: ignore[arg-type]
    registered: list[pulumi.CustomResource] = []
    Environment(settings.environment.value, pin(settings, pins), catalogue,
                opts=pulumi.ResourceOptions(providers=[provider], transformations=[collect_into(registered)]),
                alerting=alerting, alerting_secrets=read_secrets(alerting) if live else {}, retention=retention,
                retention_password=(pulumi.Config(PROJECT).get_secret(retention_config.PASSWORD) or "") if live else "",
                protect_outputs=protected_stack_outputs(retention.protect_stacks, outputs) if retention else None,
                migrations=migrations, database_urls=databases,
                served={name: service.history.served for name, service in outputs.services.items()},
                applied=applied_states(previous))
    export_when_applied(outputs.model_dump(mode="json"), registered)
    return outputs


def collect_into(registered: list[pulumi.CustomResource]) -> pulumi.ResourceTransformation:
    """A transformation that changes nothing and keeps every resource registered under the component."""
    def collect(args: pulumi.ResourceTransformationArgs) -> None:
        if isinstance(args.resource, pulumi.CustomResource):
            registered.append(args.resource)
        return None
    return collect


def export_when_applied(values: dict[str, Any], registered: list[pulumi.CustomResource]) -> None:
    """The outputs say what the stack applied, so an update exports them only once every resource is: after a
    failed one the last good outputs stay (the engine would otherwise save a failed update's), and with them the
    migration record, the served history and the release tool's view of the stack. A preview shows them as they
    will be."""
    if pulumi.runtime.is_dry_run():
        for key, value in values.items():
            pulumi.export(key, value)
        return
    applied = pulumi.Output.all(*(resource.id for resource in registered))
    for key, value in values.items():
        pulumi.export(key, applied.apply(lambda _, value=value: value))


def check_database_urls(settings: StackSettings, catalogue: Catalogue, value: Any) -> dict[str, Any]:
    """The configured database URL per service (service -> URL), or ConfigError."""
    urls = structured(value)
    problems = check_databases(settings, catalogue, urls, live=settings.cluster is not None)
    if problems:
        raise ConfigError(f'stack "{settings.stack}"', problems)
    return urls or {}


def load_databases(settings: StackSettings, catalogue: Catalogue,
                   urls: Mapping[str, Any]) -> dict[str, pulumi.Output[str]]:
    """The database URL of every service that migrates, as secret Outputs; placeholders when rendering manifests.
    ``urls``: as check_database_urls returned them (with a cluster, one for every service that migrates)."""
    migrating = [name for name in settings.services if catalogue.services[name].migrations is not None]
    if settings.cluster is None:
        return {name: pulumi.Output.secret(PLACEHOLDER_URL.format(service=name)) for name in migrating}
    configured = pulumi.Config(PROJECT).get_secret_object(DATABASES_KEY)
    return {name: configured.apply(lambda secret, name=name: secret[name])  # type: ignore[union-attr]
            for name in migrating}


def warn_credentials_withheld(settings: StackSettings, configured: list[str], *, retention: bool,
                              migrating: bool, announcing: bool = False) -> None:
    """A rendered file holds Secrets in plain text (base64), so no credential is written to one: the rendered
    Secrets hold placeholders that reach nothing. ``configured``: the credentials the stack sets, left out;
    ``retention`` and ``migrating``: whether the stack has a retention job and migration Jobs to name;
    ``announcing``: whether the stack names an Alertmanager, which hears no event of a change nothing applies."""
    placeholders = [f"alert receivers point at {PLACEHOLDER_HOST} and deliver nothing"]
    if migrating:
        placeholders.append(f"migration Jobs at {PLACEHOLDER_URL.format(service='<service>')} and migrate nothing")
    if retention:
        placeholders.append("the retention job has no registry password")
    pulumi.log.warn(
        f"no cluster: manifests are rendered to {render_directory(settings)}, and a rendered file holds Secrets in "
        f"plain text, so theirs are placeholders: {', '.join(placeholders)}"
        + (f"; configured, not written: {', '.join(configured)}" if configured else "")
        + ("; deployment events are recorded, not posted to alerting.alertmanager_url" if announcing else ""))


def protected_stack_outputs(stacks: list[str], own: StackOutputs) -> dict[str, Any]:
    """Each protected stack's outputs: this stack's as computed now, the others' through StackReferences."""
    return {stack: own.model_dump(mode="json") if stack == pulumi.get_stack() else
            pulumi.StackReference(f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}").outputs
            for stack in stacks}


def read_stack_file(stack: str) -> Any:
    """The stack's file as written, for what the engine's view of the config hides (which entries are secure);
    None under mocks. A config passed another way is said to be unchecked rather than passed in silence."""
    root = pulumi.get_root_directory()
    if not root:
        return None
    try:
        return yaml.safe_load((Path(root) / f"Pulumi.{stack}.yaml").read_text())
    except (OSError, yaml.YAMLError) as error:
        pulumi.log.warn(f"Pulumi.{stack}.yaml cannot be read ({type(error).__name__}): a plain-text entry of an "
                        "object secret (databases) beside a secret one cannot be refused")
        return None


def stack_config() -> dict[str, Any]:
    """Every `release-infra:*` key of the stack, so a misspelt key is reported rather than silently ignored.

    The SDK keeps the whole config map in ``pulumi.runtime.config.CONFIG``; ``pulumi.Config`` can only look up
    keys it already knows.
    """
    prefix = f"{PROJECT}:"
    return {key[len(prefix):]: value for key, value in runtime_config.CONFIG.get().items() if key.startswith(prefix)}


def kubernetes_provider(settings: StackSettings) -> k8s.Provider:
    """A cluster when the stack names one; otherwise manifests rendered to a directory, no cluster needed."""
    if settings.cluster is not None:
        return k8s.Provider("kubernetes", context=settings.cluster.context, kubeconfig=settings.cluster.kubeconfig,
                            namespace=settings.namespace)
    return k8s.Provider("kubernetes", render_yaml_to_directory=str(render_directory(settings)),
                        namespace=settings.namespace)


def render_directory(settings: StackSettings) -> Path:
    return Path(os.environ.get(RENDER_DIR_VARIABLE) or ROOT / "build" / "manifests") / settings.stack
