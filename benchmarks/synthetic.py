"""A synthetic platform of N services, shaped like the real catalogue and prod stack, for benchmarks."""

from __future__ import annotations

import argparse
import copy
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from core.catalogue import Catalogue
from core.outputs import stack_outputs
from core.settings import load_settings
from tests.support.stacks import ROOT, stack_config


def write_catalogue(directory: Path, services: int) -> Path:
    template = yaml.safe_load((ROOT / "catalogue.yaml").read_text())["services"]["payin-api"]
    catalogue = {"services": {_name(i): _own_database(copy.deepcopy(template), _name(i)) for i in range(services)}}
    path = directory / f"catalogue-{services}.yaml"
    path.write_text(yaml.safe_dump(catalogue))
    return path


def prod_config(services: int) -> dict[str, Any]:
    """Prod with ``services`` services, promoted from ``upstream_config``'s test stack."""
    return _with_services(stack_config("prod"), services)


def upstream_config(services: int) -> dict[str, Any]:
    """The test stack prod is promoted from, running the same images: prod runs only images test has run."""
    return _with_services(stack_config("test"), services)


def upstream_outputs(services: int, catalogue: Path) -> dict[str, dict[str, Any]]:
    """For mocks' ``stack_outputs``: what that test stack exported after its update."""
    test = load_settings("test", upstream_config(services), Catalogue.load(catalogue), datetime.now(timezone.utc))
    return {"test": stack_outputs(test).model_dump(mode="json")}


def _with_services(config: dict[str, Any], services: int) -> dict[str, Any]:
    # Services only, as the figures always measured; the retention job would also need the other three stacks.
    config.pop("retention", None)
    config["services"] = {
        _name(i): {
            "active": "blue" if i % 2 else "green",
            "blue": {"image": f"registry.pay.internal/{_name(i)}:{i:07x}-v1.{i}.0"},
            "green": {"image": f"registry.pay.internal/{_name(i)}:{i + 1:07x}-v1.{i}.1"},
        }
        for i in range(services)
    }
    return config


def _own_database(service: dict[str, Any], name: str) -> dict[str, Any]:
    """Each service that migrates has a database Secret of its own (the catalogue refuses one for two)."""
    if service.get("migrations"):
        service["migrations"]["database_secret"] = f"{name}-database"
    return service


def _name(index: int) -> str:
    return f"service-{index:03d}"


def repeat_count(doc: str, default: int = 7) -> int:
    """The `--repeat N` of a benchmark script whose docstring's first line describes it."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=default)
    return parser.parse_args().repeat
