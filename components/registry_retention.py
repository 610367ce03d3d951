"""RegistryRetention: the daily job that applies the registry retention policy (seed 000 §11)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from core.registry import job
from core.registry.settings import RetentionSettings


class RegistryRetention(pulumi.ComponentResource):
    """A CronJob running release-infra-retention with its own token-less ServiceAccount and no RBAC at all.

    ``password`` should be a Pulumi secret (``config.require_secret``) so it stays encrypted in the state.
    ``protect_outputs`` maps each protected stack to its outputs (``StackReference.outputs`` or this stack's own);
    they become the files the tool reads with --protect-outputs, in a ConfigMap named after them. ``services`` (the
    catalogue's) name the repositories it cleans, with its own.
    """

    cron_job: k8s.batch.v1.CronJob

    def __init__(self, name: str, settings: RetentionSettings, password: pulumi.Input[str],
                 protect_outputs: Mapping[str, pulumi.Input[Any]], labels: Mapping[str, str],
                 opts: Optional[pulumi.ResourceOptions] = None, *, namespace: str, services: Sequence[str]) -> None:
        super().__init__("release-infra:registry_retention:RegistryRetention", name, None, opts)
        missing = [stack for stack in settings.protect_stacks if stack not in protect_outputs]
        if missing:
            raise ValueError(f"protect_outputs lacks {', '.join(missing)}: without a stack's outputs the job "
                             "could delete an image that stack runs")
        child = pulumi.ResourceOptions(parent=self)
        labels = dict(labels)
        account = job.service_account(settings, namespace, labels)
        k8s.core.v1.ServiceAccount(f"{name}-account", metadata=account["metadata"],
                                   automount_service_account_token=account["automount_service_account_token"],
                                   opts=child)
        secret = k8s.core.v1.Secret(
            f"{name}-credentials", metadata=job.metadata(f"{name}-credentials", namespace, labels), type="Opaque",
            string_data={job.PASSWORD_KEY: pulumi.Output.secret(password)}, opts=child)
        # Sorted keys: outputs read through a StackReference come in no fixed order, and a different text would
        # name a new ConfigMap at every update.
        files = pulumi.Output.all(**{f"{stack}.json": pulumi.Output.json_dumps(
            pulumi.Output.from_input(protect_outputs[stack]).apply(job.protected_view), sort_keys=True)
            for stack in settings.protect_stacks})
        # Named after the files, so known only once they are: inside an apply.
        config_map = files.apply(lambda content: job.protect_config_map(name, namespace, labels, content))
        protect = k8s.core.v1.ConfigMap(f"{name}-protect", metadata=config_map["metadata"], data=config_map["data"],
                                        immutable=config_map["immutable"], opts=child)
        manifest = job.cron_job(settings, name, namespace, f"{name}-credentials", config_map["metadata"]["name"],
                                labels, services)
        self.cron_job = k8s.batch.v1.CronJob(
            f"{name}-job", metadata=manifest["metadata"], spec=manifest["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret, protect]))
        self.policy = job.policy_outputs(settings)
        self.register_outputs({"policy": self.policy, "cron_job": self.cron_job.metadata["name"]})
