"""The program: Pulumi.<stack>.yaml + catalogue.yaml -> validated settings -> Environment -> stack outputs."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import config as runtime_config

from components.alerting import read_secrets
from components.environment import Environment
from core.alerting.settings import SECRET_KEYS, load_alerting
from core.catalogue import Catalogue
from core.errors import ConfigError
from core.outputs import StackOutputs, stack_outputs
from core.registry import digests as digest_config
from core.registry import settings as retention_config
from core.registry.pinning import pin, pinned
from core.settings import PROJECT, StackSettings, load_settings
from infra.image_digests import pin_images
from infra.stack_state import previous_outputs

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "catalogue.yaml"
RENDER_DIR_VARIABLE = "RELEASE_INFRA_RENDER_DIR"  # manifests go to <dir>/<stack>
CATALOGUE_VARIABLE = "RELEASE_INFRA_CATALOGUE"  # another catalogue, for benchmarks and experiments


def main(now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
         catalogue_file: Path | None = None) -> StackOutputs:
    """Validate everything first: a bad value fails the update before a single resource is registered."""
    stack = pulumi.get_stack()
    catalogue_file = catalogue_file or Path(os.environ.get(CATALOGUE_VARIABLE) or CATALOGUE)
    try:
        catalogue = Catalogue.load(catalogue_file)
        config = stack_config()
        settings = load_settings(stack, config, catalogue, now())
        alerting = load_alerting(stack, settings.environment, config.get("alerting"),
                                 {key: config[key] for key in SECRET_KEYS if key in config},
                                 live=settings.cluster is not None)
        retention = retention_config.load_retention(
            stack, config.get(retention_config.KEY),
            {key: config[key] for key in (retention_config.PASSWORD,) if key in config},
            settings.registry, live=settings.cluster is not None)
        digests = digest_config.load_image_digests(
            stack, config.get(digest_config.KEY),
            {key: config[key] for key in (digest_config.PASSWORD,) if key in config},
            settings.registry, live=settings.cluster is not None,
            encrypted=runtime_config.is_config_secret(f"{PROJECT}:{digest_config.PASSWORD}"))
        job_image = (retention_config.KEY, "image")
        pins = pin_images(settings, digests, previous_outputs(), {job_image: retention.image} if retention else None)
        if retention:
            retention = retention.model_copy(update={"image": pinned(retention.image, pins.get(job_image))})
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None
    provider = kubernetes_provider(settings)
    outputs = stack_outputs(settings, pins)
    Environment(settings.environment.value, pin(settings, pins), catalogue,
                opts=pulumi.ResourceOptions(providers=[provider]),
                alerting=alerting, alerting_secrets=read_secrets(alerting), retention=retention,
                retention_password=pulumi.Config(PROJECT).get_secret(retention_config.PASSWORD) or "",
                protect_outputs=protected_stack_outputs(retention.protect_stacks, outputs) if retention else None)
    for key, value in outputs.model_dump(mode="json").items():
        pulumi.export(key, value)
    return outputs


def protected_stack_outputs(stacks: list[str], own: StackOutputs) -> dict[str, Any]:
    """Each protected stack's outputs: this stack's as computed now, the others' through StackReferences."""
    return {stack: own.model_dump(mode="json") if stack == pulumi.get_stack() else
            pulumi.StackReference(f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}").outputs
            for stack in stacks}


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
    directory = Path(os.environ.get(RENDER_DIR_VARIABLE) or ROOT / "build" / "manifests") / settings.stack
    return k8s.Provider("kubernetes", render_yaml_to_directory=str(directory), namespace=settings.namespace)
