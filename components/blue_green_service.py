"""BlueGreenService: one service's Deployment per colour, its active and preview Services and disruption budgets,
and the migration Job that must finish before either colour's Deployment changes."""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from core.blue_green import BlueGreenPlan, Role
from core.migrations import DATABASE_URL


class BlueGreenService(pulumi.ComponentResource):
    """Registers a BlueGreenPlan; a colour switch reaches only the two Services, never a Deployment or the Job.

    The preview Service comes from ``route_preview``, once the environment's gateways exist (see there).
    """

    deployments: dict[str, k8s.apps.v1.Deployment]
    services: dict[str, k8s.core.v1.Service]
    migration: Optional[k8s.batch.v1.Job]

    def __init__(self, name: str, plan: BlueGreenPlan, opts: Optional[pulumi.ResourceOptions] = None, *,
                 database_url: Optional[pulumi.Input[str]] = None, keep_finished_jobs: bool = False) -> None:
        super().__init__("release-infra:services:BlueGreenService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.migration = None if plan.migration is None else self._migration(
            name, plan, database_url, keep_finished_jobs)
        # The Deployments wait for the Job: Pulumi awaits a Job's completion, and a failed Job stops the update
        # before any colour changes.
        workload = child if self.migration is None else pulumi.ResourceOptions(parent=self, depends_on=[self.migration])
        self.deployments = {
            colour: k8s.apps.v1.Deployment(f"{name}-{colour}", metadata=manifest["metadata"], spec=manifest["spec"],
                                           opts=workload)
            for colour, manifest in plan.deployments.items()
        }
        self._name, self._plan = name, plan
        self.services = {"active": self._routing_service("active")}
        for colour, manifest in plan.disruption_budgets.items():
            k8s.policy.v1.PodDisruptionBudget(f"{name}-{colour}", metadata=manifest["metadata"],
                                              spec=manifest["spec"], opts=child)

    def route_preview(self, after: Sequence[pulumi.Resource] = ()) -> k8s.core.v1.Service:
        """The preview Service, after ``after`` (the gateways' Deployments). At the end of a canary at 100% the
        gateway moves from the preview Service onto the active one in the same update that switches the colours;
        its pods not yet replaced still send every request to the preview Service, so that must keep the new
        colour until the engine has awaited the gateway's rollout. Completes the component."""
        self.services["preview"] = self._routing_service("preview", after)
        self.register_outputs({
            "services": {role: service.metadata["name"] for role, service in self.services.items()},
            "migration": self.migration.metadata["name"] if self.migration else None,
        })
        return self.services["preview"]

    def _routing_service(self, role: Role, after: Sequence[pulumi.Resource] = ()) -> k8s.core.v1.Service:
        """A routing Service waits for both Deployments: Pulumi awaits a Deployment's rollout, so a switch onto a
        colour scaled up in the same update (a cold standby made active) takes traffic only once its pods are ready."""
        manifest = self._plan.services[role]
        return k8s.core.v1.Service(f"{self._name}-{role}", metadata=manifest["metadata"], spec=manifest["spec"],
                                   opts=pulumi.ResourceOptions(parent=self,
                                                               depends_on=[*self.deployments.values(), *after]))

    def _migration(self, name: str, plan: BlueGreenPlan, database_url: Optional[pulumi.Input[str]],
                   keep_finished_jobs: bool) -> k8s.batch.v1.Job:
        """The database Secret (from a Pulumi secret, so the state keeps it encrypted) and the Job reading it.

        With ``keep_finished_jobs`` a Job that a newer image's Job replaces is left in the cluster, with its logs,
        until its TTL; rendered manifests have no logs to keep, so there the replaced Job's file goes.

        The Secret is named after its Kubernetes name, not the service: the database outlives a rename of the
        service, and under a new name Pulumi would create the same Secret and then delete it.
        """
        migration = plan.migration
        assert migration is not None
        secret_name = f"{pulumi.get_stack()}-{migration.database_secret['metadata']['name']}"
        before = f"{name}-database"  # how it was named first: after the service
        secret = k8s.core.v1.Secret(secret_name, metadata=migration.database_secret["metadata"],
                                    type=migration.database_secret["type"],
                                    string_data={DATABASE_URL: pulumi.Output.secret(database_url or "")},
                                    opts=pulumi.ResourceOptions(
                                        parent=self, aliases=[pulumi.Alias(name=before)] if before != secret_name
                                        else None))
        # The engine awaits the Job as long as it may run (the provider's own wait is 10 minutes): a longer
        # migration would fail the update while it still ran, and the Deployments would not follow.
        wait = f"{migration.job['spec']['activeDeadlineSeconds'] + 60}s"
        # A Job that already migrated its image is left as it ran: the provider replaces a Job whose template
        # changes (new resources, say), which would run the migrations again, or, where finished Jobs are kept,
        # fail to create one under the kept name. The next image's Job takes the change.
        return k8s.batch.v1.Job(f"{name}-migration", metadata=migration.job["metadata"], spec=migration.job["spec"],
                                opts=pulumi.ResourceOptions(parent=self, depends_on=[secret],
                                                            retain_on_delete=keep_finished_jobs,
                                                            ignore_changes=["spec"] if migration.applied else None,
                                                            custom_timeouts=pulumi.CustomTimeouts(create=wait,
                                                                                                  update=wait)))
