"""Label keys shared by every manifest, so selectors and policies agree on one spelling."""

from __future__ import annotations

from core.settings import StackSettings

APP = "app"
COLOR = "color"  # the DESIGN's selector key: {app, color}
VERSION = "app.kubernetes.io/version"
TIER = "release-infra/tier"
ENVIRONMENT = "release-infra/environment"
ZONE = "release-infra/zone"
INTERNAL_ZONE = "internal"
PROD_RELEASE_CHECKS = "release-infra/prod-release-checks"  # on the namespaces that may call prod's services directly


def common(settings: StackSettings) -> dict[str, str]:
    return {
        "app.kubernetes.io/part-of": "payments",
        "app.kubernetes.io/managed-by": "release-infra",
        ENVIRONMENT: settings.environment.value,
    }


def region(code: str) -> str:
    return f"region.release-infra/{code.lower()}"
