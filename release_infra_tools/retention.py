"""release-infra-retention: applies the retention policy (core.registry.retention) to the private registry.

Dry run unless --apply. It reads everything (every repository, tag, manifest and config) and decides for every
repository before it deletes anything, so bad input anywhere (a tag of unknown kind, an unreadable outputs file,
a registry that refuses the credentials) deletes nothing anywhere. Deleting is by digest, in a fixed order (an
index before what it lists), and a digest that is already gone counts as deleted: a run killed at any point and
started again ends in the same state. A registry failure part-way still prints the report of what was deleted, and
so does SIGTERM (the CronJob's activeDeadlineSeconds, a node drain); each DELETE is also logged to stderr as it
happens, so even a SIGKILL leaves a record of what went.

    release-infra-retention --registry https://registry.pay.internal \\
        --protect-outputs sandbox.json --protect-outputs dev.json --protect-outputs test.json \\
        --protect-outputs prod.json [--apply]

Credentials: RETENTION_REGISTRY_USERNAME and RETENTION_REGISTRY_PASSWORD, or --credentials-file holding
``username:password``; never printed. Exit status: 0 done, 1 the registry failed us, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from pydantic import ValidationError

from core.errors import URL_CREDENTIALS, without_credentials
from core.images import RELEASE_TAG
from core.names import ENVIRONMENTS
from core.registry.digests import PLAIN_HTTP_RULE, is_loopback
from core.registry.retention import (DEFAULT_KEEP_LAST, ListedImage, ProtectedImage, RepositoryPlan, RetentionError,
                                     RetentionPolicy, TaggedImage, Verdict, plan_repository, protected_from_outputs,
                                     protected_image)
from release_infra_tools.registry import RETENTION_CREDENTIALS, Manifest, RegistryClient, RegistryError

USERNAME_VARIABLE = "RETENTION_REGISTRY_USERNAME"
PASSWORD_VARIABLE = "RETENTION_REGISTRY_PASSWORD"


class UsageError(Exception):
    """Bad input from the command line or its files: exit status 2."""


@dataclass
class Scanned:
    """One repository as read: each tag's image, and the manifests indexes list that no tag names."""

    images: list[TaggedImage]
    untagged: list[ListedImage]

    def digests(self) -> dict[str, str]:
        return {image.tag: image.digest for image in self.images}


@dataclass
class Run:
    plans: list[RepositoryPlan]
    deleted: list[tuple[str, str]]
    already_gone: list[tuple[str, str]]
    examined_tags: int
    requests: int
    seconds: float
    warnings: list[str]
    skipped: list[str] = field(default_factory=list)  # repositories left alone mid-apply: the run is incomplete
    failed: str | None = None  # the registry failure that stopped the deletions part-way

    def report(self, applied: bool) -> dict[str, Any]:
        done = {key: "deleted" for key in self.deleted} | {key: "already gone" for key in self.already_gone}
        return {
            "mode": "apply" if applied else "dry-run",
            "repositories": {
                plan.repository: {
                    "keep": [{"digest": v.digest, "tags": v.tags, "created": _time(v.created), "why": v.reasons}
                             for v in plan.kept],
                    "delete": [{"digest": v.digest, "tags": v.tags, "created": _time(v.created), "why": v.why_deleted,
                                "status": done.get((plan.repository, v.digest), "not deleted") if applied
                                else "would delete"}
                               for v in plan.deleted],
                } for plan in self.plans},
            "deleted": len(self.deleted), "already_gone": len(self.already_gone),
            "examined_tags": self.examined_tags, "requests": self.requests, "seconds": round(self.seconds, 3),
            "warnings": self.warnings, "skipped": self.skipped, "failed": self.failed,
            "orphaned": [{"repository": repository, "digest": digest} for repository, digest in self.orphaned()],
        }

    def orphaned(self) -> list[tuple[str, str]]:
        """Planned manifests still there that no remaining tag leads to: the untagged platform images of an index
        deleted by a run stopped part-way. A rerun reads from tags and never sees them; delete them by digest."""
        done = set(self.deleted) | set(self.already_gone)
        left = []
        for plan in self.plans:
            present = {v.digest: v for v in plan.verdicts if (plan.repository, v.digest) not in done}
            reachable, queue = set(), [v for v in present.values() if v.tags]
            while queue:
                verdict = queue.pop()
                if verdict.digest not in reachable:
                    reachable.add(verdict.digest)
                    queue += [present[d] for d in (*verdict.children, *verdict.attestations) if d in present]
            left += [(plan.repository, digest) for digest in sorted(present.keys() - reachable)]
        return left


class Termination:
    """SIGTERM becomes a RegistryError in the main thread, so the run stops as on a registry failure part-way: the
    report of what was deleted is printed and the exit status is 1. Held off while a DELETE is sent and recorded,
    so no deletion that happened is missing from the report."""

    def __init__(self) -> None:
        self.holding = False
        self.pending = False
        self.stopped = False  # once stopped (or done), a signal must not cut the report short

    def handle(self, signum: int, frame: object) -> None:
        if self.holding:
            self.pending = True
        elif not self.stopped:
            self.stopped = True
            raise RegistryError("received SIGTERM (the job's activeDeadlineSeconds, or a node drain)")

    @contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            self.pending = False
            self.handle(signal.SIGTERM, None)


def _log_deletion(repository: str, verdict: Verdict, done: bool) -> None:
    """One stderr line per DELETE as it happens: a run killed before its report leaves this record."""
    print(f"release-infra-retention: {'deleted' if done else 'already gone'} {repository}@{verdict.digest} "
          f"({','.join(verdict.tags) or 'untagged'})", file=sys.stderr, flush=True)


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def load_protection(files: Sequence[Path], required: Sequence[str], apply: bool) -> tuple[list[ProtectedImage],
                                                                                             list[str]]:
    """Protected images from stack-output files; with --apply every required environment must be covered."""
    protected: list[ProtectedImage] = []
    seen = set()
    for file in files:
        try:
            outputs = json.loads(Path(file).read_text())
        except (OSError, ValueError) as error:
            raise UsageError(f"--protect-outputs {file}: cannot be read as JSON: {error}") from None
        try:
            protected += protected_from_outputs(outputs, str(file))
        except RetentionError as error:
            raise UsageError(str(error)) from None
        seen.add(outputs.get("environment"))
    missing = [environment for environment in required if environment not in seen]
    warnings = []
    if missing:
        message = (f"no --protect-outputs for {', '.join(missing)}: the images those environments run would not "
                   f"be protected; pass `pulumi stack output --json` of each stack")
        if apply:
            raise UsageError(message + " (or narrow --require-environments)")
        warnings.append(message)
    return protected, warnings


def _protected_image(text: str) -> ProtectedImage:
    try:
        return protected_image(text, "a workload named by --protect-image", "--protect-image")
    except RetentionError as error:
        raise UsageError(str(error)) from None


def scan(client: RegistryClient, repository: str, tags: list[str], workers: int) -> Scanned:
    """Each listed tag's manifest, then by digest each manifest an index lists that no tag names (nested indexes
    too), then each distinct config once. Attestation manifests are not read: they date nothing."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        manifests = list(pool.map(lambda tag: client.manifest(repository, tag), tags))
        read: dict[str, Manifest | None] = {m.digest: m for m in manifests if m is not None}
        wanted = sorted({child for m in manifests if m is not None for child in m.children} - read.keys())
        while wanted:  # None: listed but missing from the registry (the plan reports the index)
            read.update(zip(wanted, pool.map(lambda digest: client.manifest(repository, digest), wanted)))
            wanted = sorted({child for digest in wanted if read[digest] is not None
                             for child in read[digest].children} - read.keys())  # type: ignore[union-attr]
        tagged = {m.digest for m in manifests if m is not None}
        untagged = [m for digest, m in read.items() if m is not None and digest not in tagged]
        configs = sorted({m.config_digest for m in read.values() if m is not None and m.config_digest})
        created = dict(zip(configs, pool.map(lambda config: client.created(repository, config), configs)))
    return Scanned(
        [TaggedImage(tag, m.digest, created.get(m.config_digest or ""), m.children, m.attestations)
         for tag, m in zip(tags, manifests) if m is not None],  # None: tag of a deleted manifest
        [ListedImage(m.digest, created.get(m.config_digest or ""), m.children, m.attestations) for m in untagged])


def plan_scanned(repository: str, scanned: Scanned, protected: list[ProtectedImage],
                 policy: RetentionPolicy) -> RepositoryPlan:
    return plan_repository(repository, scanned.images, protected, policy, untagged=scanned.untagged)


def moved(client: RegistryClient, repository: str, scanned: Scanned, now: list[str],
          protected: list[ProtectedImage], workers: int) -> bool:
    """Whether the tags changed since the scan: a new or vanished name, or a tag that may move (a bare release tag,
    one an environment runs) now naming another digest. Build tags are immutable under the standard."""
    before = scanned.digests()
    if set(now) != before.keys():
        return True
    running = {p.reference.tag for p in protected if p.reference.repository == repository}
    watched = [tag for tag in now if RELEASE_TAG.match(tag) or tag in running]
    if not watched:
        return False
    with ThreadPoolExecutor(max_workers=workers) as pool:
        resolved = list(pool.map(lambda tag: client.digest(repository, tag), watched))
    return any(digest != before[tag] for tag, digest in zip(watched, resolved))


def selected(client: RegistryClient, repositories: Sequence[str], services: Sequence[str]
             ) -> tuple[list[str], list[str]]:
    """The repositories to clean, and the services that have none. A service's repositories are those whose last
    path component is its name (payin-api, payments/payin-api), as an image's service is; one not pushed yet has
    nothing to clean, where a --repository the registry does not know is a typo."""
    if not repositories and not services:
        return sorted(client.repositories()), []
    of_services = [name for name in client.repositories() if name.rsplit("/", 1)[-1] in services] if services else []
    absent = sorted(set(services) - {name.rsplit("/", 1)[-1] for name in of_services})
    return sorted({*repositories, *of_services}), absent


def run(client: RegistryClient, policy: RetentionPolicy, protected: list[ProtectedImage], *, apply: bool,
        repositories: Sequence[str] = (), services: Sequence[str] = (), workers: int = 8,
        warnings: list[str] | None = None, termination: Termination | None = None) -> Run:
    """Read and plan everything, then (with ``apply``) delete. A registry failure (or ``termination``'s SIGTERM)
    while reading raises; one while deleting stops the deletions and is returned in ``failed`` with what was done,
    for the report. Without ``repositories`` or ``services``, every repository of the registry."""
    termination = termination or Termination()
    started = time.monotonic()
    names, absent = selected(client, repositories, services)
    warnings = [*(warnings or []), *(f"--service {service}: the registry has no repository of it yet, so nothing of "
                                     "it to clean" for service in absent)]
    listed = {name: client.tags(name) for name in names}
    unknown = [name for name in repositories if listed[name] is None]
    if unknown:  # a typo would otherwise read as a repository with nothing to delete
        raise RetentionError(f"--repository {', '.join(unknown)}: the registry has no such repository (repositories "
                             "are named after services, e.g. payin-api); nothing was deleted")
    scanned = {name: scan(client, name, listed[name] or [], workers) for name in names}
    plans = [plan_scanned(name, scanned[name], protected, policy) for name in names]  # all before any delete
    deleted, gone, skipped = [], [], []  # type: list[tuple[str, str]], list[tuple[str, str]], list[str]
    warnings = list(warnings or []) + [warning for p in plans for warning in p.warnings]
    failed = None
    if apply:
        try:
            for index, planned in enumerate(plans):
                if not planned.deleted:
                    continue
                name = planned.repository
                now = client.tags(name) or []
                if moved(client, name, scanned[name], now, protected, workers):
                    # Tags changed since the scan (a push, a retag): decide this repository again on what is there.
                    try:
                        planned = plans[index] = plan_scanned(name, scan(client, name, now, workers), protected,
                                                              policy)
                    except RetentionError as error:  # other repositories may be cleaned already: report, go on
                        skipped.append(name)
                        warnings.append(f"{str(error).removesuffix('; nothing was deleted')} (tags changed during "
                                        "the run): nothing deleted there")
                        continue
                    warnings += [f"{name}: tags changed or moved during the run; planned again"] + \
                        [warning for warning in planned.warnings if warning not in warnings]
                for verdict in planned.deletion_order():
                    with termination.held():
                        done = client.delete(name, verdict.digest)
                        (deleted if done else gone).append((name, verdict.digest))
                        _log_deletion(name, verdict, done)
        except RegistryError as error:
            failed = str(error)
    return Run(plans, deleted, gone, sum(len(s.images) for s in scanned.values()), client.requests,
               time.monotonic() - started, warnings, skipped, failed)


def credentials(file: Path | None) -> tuple[str | None, str | None]:
    if file is not None:
        try:
            username, separator, password = Path(file).read_text().strip().partition(":")
        except OSError as error:
            raise UsageError(f"--credentials-file {file}: cannot be read: {error.strerror}") from None
        if not separator or not username:
            raise UsageError(f"--credentials-file {file}: must hold username:password on one line")
        return username, password
    return os.environ.get(USERNAME_VARIABLE) or None, os.environ.get(PASSWORD_VARIABLE) or None


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="release-infra-retention", description=__doc__.split("\n\n")[0])
    parse.add_argument("--registry", default=os.environ.get("RETENTION_REGISTRY_URL"),
                       help="registry base URL, e.g. https://registry.pay.internal (or RETENTION_REGISTRY_URL)")
    parse.add_argument("--protect-outputs", action="append", type=Path, default=[], metavar="FILE",
                       help="`pulumi stack output --json` of a stack; its images are never deleted (repeatable)")
    parse.add_argument("--protect-image", action="append", default=[], metavar="IMAGE",
                       help="an image that runs outside the stacks' services, such as this job's own; never deleted "
                            "(repeatable)")
    parse.add_argument("--require-environments", default=",".join(ENVIRONMENTS),
                       help="environments whose outputs --apply insists on (default: all four)")
    parse.add_argument("--keep-last", default=str(DEFAULT_KEEP_LAST), help="build images kept per service")
    parse.add_argument("--repository", action="append", default=[], help="only this repository (repeatable)")
    parse.add_argument("--service", action="append", default=[],
                       help="only this service's repositories: those named after it, nested or not (repeatable); "
                            "with --repository, both")
    parse.add_argument("--apply", action="store_true", help="delete; without it, only report (dry run)")
    parse.add_argument("--credentials-file", type=Path, help="file holding username:password")
    parse.add_argument("--workers", type=int, default=8, help="parallel requests")
    parse.add_argument("--attempts", type=int, default=5, help="tries per request on 429, 5xx and network errors")
    parse.add_argument("--backoff-seconds", type=float, default=0.5, help="first retry delay; doubles per try")
    parse.add_argument("--json", action="store_true", help="print the report as JSON")
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        if not arguments.registry:
            raise UsageError("--registry is missing: the registry's base URL, e.g. https://registry.pay.internal")
        if URL_CREDENTIALS.search(arguments.registry):  # every message would show them; the job's spec holds them
            raise UsageError(f"--registry {without_credentials(arguments.registry)}: must hold no "
                             f"credentials (user:password@); {RETENTION_CREDENTIALS}")
        if not arguments.registry.startswith(("http://", "https://")):
            raise UsageError(f"--registry {arguments.registry}: must be an http:// or https:// URL")
        if arguments.registry.startswith("http://") and not is_loopback(urlsplit(arguments.registry).hostname or ""):
            raise UsageError(f"--registry {arguments.registry}: must be https://: {PLAIN_HTTP_RULE}")
        try:
            policy = RetentionPolicy(keep_last=arguments.keep_last)
        except ValidationError:
            raise UsageError(f"--keep-last {arguments.keep_last}: must be a whole number from 1 to 10000; the policy "
                             "keeps at least the newest build of every service") from None
        required = [name for name in arguments.require_environments.split(",") if name]
        unknown = [name for name in required if name not in ENVIRONMENTS]
        if unknown:
            raise UsageError(f"--require-environments: unknown {', '.join(unknown)}; known: {', '.join(ENVIRONMENTS)}")
        protected, warnings = load_protection(arguments.protect_outputs, required, arguments.apply)
        protected += [_protected_image(text) for text in arguments.protect_image]
        username, password = credentials(arguments.credentials_file)
    except UsageError as error:
        print(f"release-infra-retention: error: {error}; nothing was deleted", file=sys.stderr)
        return 2
    client = RegistryClient(arguments.registry, username, password, attempts=arguments.attempts,
                            backoff_seconds=arguments.backoff_seconds, workers=arguments.workers)
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal.signal works only there
    termination = Termination()
    previous = signal.signal(signal.SIGTERM, termination.handle) if in_main_thread else None
    try:
        return _run_and_report(client, arguments, policy, protected, warnings, termination)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _run_and_report(client: RegistryClient, arguments: argparse.Namespace, policy: RetentionPolicy,
                    protected: list[ProtectedImage], warnings: list[str], termination: Termination) -> int:
    try:
        result = run(client, policy, protected, apply=arguments.apply, repositories=arguments.repository,
                     services=arguments.service,
                     workers=arguments.workers, warnings=warnings, termination=termination)
    except RetentionError as error:
        print(f"release-infra-retention: error: {error}", file=sys.stderr)
        return 2
    except RegistryError as error:  # while reading: nothing was deleted
        print(f"release-infra-retention: error: {error}; stopped (a rerun finishes the job)", file=sys.stderr)
        return 1
    finally:
        termination.stopped = True  # what is left is the report: a signal now must not cut it short
        client.close()
    report = result.report(arguments.apply)
    if arguments.json:
        print(json.dumps(report, indent=2))
    else:
        print(_text(report))
    if result.failed:
        print(f"release-infra-retention: error: {result.failed}; stopped after {len(result.deleted)} deletion(s), "
              "reported above (a rerun finishes the job)", file=sys.stderr)
        return 1
    if result.skipped:
        print(f"release-infra-retention: error: {', '.join(result.skipped)} left as they were (see the warnings); "
              "the other repositories were cleaned as reported", file=sys.stderr)
        return 1
    return 0


def _text(report: dict[str, Any]) -> str:
    lines = [f"registry retention ({report['mode']})"]
    for repository, planned in report["repositories"].items():
        left = " (left as it was, see the warnings)" if repository in report["skipped"] else ""
        lines.append(f"{repository}: keep {len(planned['keep'])}, delete {len(planned['delete'])}{left}")
        for image in planned["keep"]:
            lines.append(f"  keep   {image['digest'][:19]} {_tags(image)}: {'; '.join(image['why'])}")
        for image in planned["delete"]:
            lines.append(f"  {image['status']} {image['digest'][:19]} {_tags(image)} (created {image['created']})")
    lines += [f"warning: {warning}" for warning in report["warnings"]]
    if report["failed"]:
        lines.append(f"stopped: {report['failed']}")
    for orphan in report["orphaned"]:
        repository, digest = orphan["repository"], orphan["digest"]
        lines.append(f"left untagged: {repository}@{digest}: only deleted indexes listed it, so no rerun reaches it; "
                     f"delete it by digest (DELETE /v2/{repository}/manifests/{digest})")
    lines.append(f"{report['examined_tags']} tags examined, {report['deleted']} deleted, {report['already_gone']} "
                 f"already gone, {report['requests']} HTTP requests, {report['seconds']} s")
    return "\n".join(lines)


def _tags(image: dict[str, Any]) -> str:
    return ",".join(image["tags"]) or "(untagged)"


if __name__ == "__main__":
    sys.exit(main())
