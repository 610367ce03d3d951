"""Command-line tools of release-infra that run outside Pulumi (in CI or as Kubernetes jobs)."""
