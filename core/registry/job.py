"""The retention CronJob's manifests, from RetentionSettings; the component adds the Secret and the outputs file.

The job talks to the registry only: it needs no Kubernetes API access, so its ServiceAccount mounts no token and
is bound to no Role (an empty Role would grant nothing and only add an object to audit). Its own account keeps it
from inheriting whatever the namespace's default account may be granted later.
"""

from __future__ import annotations

from typing import Any, Sequence

from core.content_address import content_addressed_name
from core.pod_security import container_security_context, pod_security_context
from core.registry.settings import RetentionSettings

PROTECT_DIR = "/etc/release-infra-retention/protect"
USERNAME_VARIABLE = "RETENTION_REGISTRY_USERNAME"
PASSWORD_VARIABLE = "RETENTION_REGISTRY_PASSWORD"
PASSWORD_KEY = "password"
Manifest = dict[str, Any]


def metadata(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """Every object of the job names its namespace, so rendered manifests land where the cluster's would."""
    return {"name": name, "namespace": namespace, "labels": {**labels, "app.kubernetes.io/name": "registry-retention"}}


def service_account(settings: RetentionSettings, namespace: str, labels: dict[str, str]) -> Manifest:
    return {"metadata": metadata(settings.service_account, namespace, labels),
            "automount_service_account_token": False}


def arguments(settings: RetentionSettings, services: Sequence[str]) -> list[str]:
    """The tool's arguments: the catalogue's services' repositories (nested or not; a service not pushed yet is a
    warning) and its own, and none of the registry's others (its mirror of KrakenD's image, say), whose tags follow
    none of the standard's rules and would stop every run."""
    # The job's own image lives in the registry it cleans, and no stack's services name it.
    args = ["--registry", str(settings.registry_url), "--keep-last", str(settings.keep_last), "--json",
            "--protect-image", str(settings.image), "--repository", settings.image.repository]
    for service in sorted(services):
        args += ["--service", service]
    for stack in settings.protect_stacks:
        args += ["--protect-outputs", f"{PROTECT_DIR}/{stack}.json"]
    return args + (["--apply"] if settings.apply else [])


def protect_config_map(name: str, namespace: str, labels: dict[str, str], files: dict[str, str]) -> Manifest:
    """The stacks' outputs the job reads, in a ConfigMap named after them and immutable, like the gateway's config.

    Its files change whenever any environment runs a new image. Under a fixed name the provider would replace it
    delete-first, leaving the CronJob a window with nothing to mount; under a content-addressed name the new one is
    created, the CronJob moved to it, and only then the old one deleted.
    """
    return {"metadata": metadata(content_addressed_name(f"{name}-protect", files), namespace, labels),
            "data": files, "immutable": True}


def cron_job(settings: RetentionSettings, name: str, namespace: str, secret: str, protect_name: Any,
             labels: dict[str, str], services: Sequence[str]) -> Manifest:
    """On the configured schedule (daily by default), never two at once, stopped at the deadline; restricted pod
    security, read-only everything.

    ``protect_name`` is the name of the ConfigMap of outputs: a str, or in the component the Output of one,
    since that name is known only once the other stacks' outputs are.
    """
    deadline = settings.deadline_minutes * 60
    container = {
        "name": "retention",
        "image": str(settings.image),
        "args": arguments(settings, services),
        "env": [
            {"name": USERNAME_VARIABLE, "value": settings.username},
            {"name": PASSWORD_VARIABLE, "valueFrom": {"secretKeyRef": {"name": secret, "key": PASSWORD_KEY}}},
        ],
        "volumeMounts": [{"name": "protect", "mountPath": PROTECT_DIR, "readOnly": True}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": container_security_context(),
    }
    pod = {
        "serviceAccountName": settings.service_account,
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "protect", "configMap": {"name": protect_name}}],
    }
    return {
        "metadata": metadata(name, namespace, labels),
        "spec": {
            "schedule": settings.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": deadline,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {"spec": {
                "activeDeadlineSeconds": deadline,
                "backoffLimit": 2,  # a rerun is safe: the tool is idempotent
                "template": {"metadata": {"labels": metadata(name, namespace, labels)["labels"]}, "spec": pod},
            }},
        },
    }


def policy_outputs(settings: RetentionSettings) -> dict[str, Any]:
    return {"keep_last": settings.keep_last, "schedule": settings.schedule, "apply": settings.apply,
            "protect_stacks": list(settings.protect_stacks), "image": str(settings.image),
            "registry_url": settings.registry_url, "keeps": "newest keep_last builds per service, every release "
            "tag, every image any protected stack runs in either colour"}


def protected_view(outputs: Any) -> dict[str, Any]:
    """What the tool reads of a stack's outputs: each colour's image and pinned digest, in the outputs' own shape.

    Only these parts go into the job's ConfigMap, so a colour switch or a canary step elsewhere leaves it unchanged
    and only a new image (what retention must learn about) updates it. Anything unreadable is passed on as it is,
    for the tool to refuse with a clear error rather than protect less.
    """
    if not isinstance(outputs, dict) or not isinstance(outputs.get("services"), dict):
        return outputs if isinstance(outputs, dict) else {}
    services = {}
    for name, service in outputs["services"].items():
        colours = service.get("colours") if isinstance(service, dict) else None
        if not isinstance(colours, dict):
            services[name] = service
            continue
        # A null digest is left out: the engine drops null values from outputs read through a StackReference.
        services[name] = {"colours": {colour: {key: spec[key] for key in ("image", "digest")
                                               if spec.get(key) is not None}
                                      if isinstance(spec, dict) else spec for colour, spec in colours.items()}}
    return {"schema_version": outputs.get("schema_version"), "environment": outputs.get("environment"),
            "services": services}
