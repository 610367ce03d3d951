"""The GitHub workflows: actionlint (with shellcheck for the `run:` scripts) and the triggers the standard sets."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.program_digest import program_digest
from tests.support.stacks import ROOT, STACKS

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"


@pytest.fixture(scope="module")
def actionlint() -> str:
    return subprocess.run([str(ROOT / "scripts" / "bootstrap-actionlint.sh")], check=True, capture_output=True,
                          text=True, timeout=900).stdout.strip()


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if True in document:  # YAML 1.1 reads the key `on` as a boolean
        document["on"] = document.pop(True)
    return document


def runner_shell(step: dict[str, Any], *defaults: dict[str, Any]) -> list[str]:
    """The command a Linux runner runs a `run:` step's script with: `bash -e` when neither the step nor the
    `defaults` of its job or workflow name a shell, and `bash --noprofile --norc -eo pipefail` for `shell: bash`
    (GitHub's documented commands; a composite action's step must name its shell)."""
    shells = [step.get("shell"), *(scope.get("defaults", {}).get("run", {}).get("shell") for scope in defaults)]
    shell = next((shell for shell in shells if shell), None)
    if shell is None:
        return ["bash", "-e"]
    assert shell == "bash", shell
    return ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


def step_named(job: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    [step] = [step for step in job["steps"] if step.get(key) == value]
    return step


def lint(actionlint: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([actionlint, "-shellcheck", shutil.which("shellcheck") or "", "-no-color"],
                          cwd=directory, capture_output=True, text=True, timeout=300)


def test_the_workflows_pass_actionlint_with_shellcheck(actionlint: str) -> None:
    assert shutil.which("shellcheck"), "shellcheck is missing: scripts/debian-packages.sh shellcheck"
    assert sorted(path.name for path in WORKFLOWS.iterdir()) == ["deploy.yml", "pull-request.yml"]
    result = lint(actionlint, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def shellcheck_action_scripts(directory: Path) -> list[str]:
    """shellcheck's findings in the `run:` scripts of the composite actions, which actionlint does not read."""
    findings = []
    for path in sorted(directory.glob("*/action.yml")):
        for step in yaml.safe_load(path.read_text())["runs"]["steps"]:
            if "run" in step:
                result = subprocess.run(["shellcheck", "--shell=bash", "-"], input=step["run"], capture_output=True,
                                        text=True, timeout=60)
                if result.returncode:
                    findings.append(f"{path.parent.name}: {step.get('name', '')}: {result.stdout}")
    return findings


def test_the_composite_actions_scripts_pass_shellcheck(tmp_path: Path) -> None:
    assert not shellcheck_action_scripts(ACTIONS)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "action.yml").write_text(yaml.safe_dump(
        {"runs": {"using": "composite", "steps": [{"shell": "bash", "run": "for f in $(ls); do echo $f; done"}]}}))
    assert "SC2045" in " ".join(shellcheck_action_scripts(tmp_path))


def test_actionlint_catches_a_broken_workflow(actionlint: str, tmp_path: Path) -> None:
    """The check above can fail: the same files with an undefined job output and an unquoted variable do."""
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)  # actionlint finds workflows in a repo
    workflow = tmp_path / ".github" / "workflows" / "pull-request.yml"
    text = workflow.read_text()
    text = text.replace("needs.affected.outputs.stacks != '[]'", "needs.affected.outputs.stack != '[]'")
    text = text.replace('--stack "$STACK" > build/preview/diff.txt', "--stack $STACK > build/preview/diff.txt")
    workflow.write_text(text)
    result = lint(actionlint, tmp_path)
    assert result.returncode == 1
    assert 'property "stack" is not defined' in result.stdout
    assert "SC2086" in result.stdout


def test_each_environment_is_updated_by_its_own_trigger() -> None:
    deploy = load(WORKFLOWS / "deploy.yml")
    jobs = deploy["jobs"]
    assert set(jobs) == {*STACKS, "prod-plan", "tests"}
    assert deploy["on"]["push"] == {"branches": ["**"], "tags": ["v*.*.*-rc*"]}
    assert jobs["sandbox"]["if"] == ("github.event_name == 'push' && github.ref_type == 'branch' && "
                                     "github.ref_name != 'main'")
    assert jobs["dev"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert jobs["test"]["if"] == "github.event_name == 'push' && github.ref_type == 'tag'"
    for stack in STACKS:
        job = jobs[stack]
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"stack-{stack}", "cancel-in-progress": False}
        up = next(step for step in job["steps"] if step.get("id") == "up")
        assert up["run"] == f"pulumi up --yes --non-interactive --stack {stack}"
        [plan] = [step for step in job["steps"] if step.get("uses") == "./.github/actions/rollback-plan"]
        assert plan["with"] == {"stack": stack}


def test_a_failed_update_is_announced_by_the_step_after_it() -> None:
    """A failed `pulumi up` never reaches the deployment events: the next step, and only that one, runs `release
    failed` for the job's stack, only when `pulumi up` itself failed or was stopped (the job's timeout or a cancelled
    run stops it halfway), never for a failed setup or plan, which deployed nothing."""
    jobs = load(WORKFLOWS / "deploy.yml")["jobs"]
    for stack in STACKS:
        steps = jobs[stack]["steps"]
        ids = [step.get("id") for step in steps]
        assert ids.count("up") == 1
        up, announce = steps[ids.index("up"):]
        assert up["run"] == f"pulumi up --yes --non-interactive --stack {stack}" and "if" not in up
        assert announce["if"] == "always() && (steps.up.outcome == 'failure' || steps.up.outcome == 'cancelled')"
        assert announce["run"] == (f'.venv/bin/release failed {stack} --reason "pulumi up failed (run '
                                   '$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID)"')
        assert set(announce["env"]) == {"PULUMI_CONFIG_PASSPHRASE"}  # it reads the stack file and outputs only


def test_prod_runs_on_the_tuesday_train_or_on_demand_after_approval() -> None:
    deploy = load(WORKFLOWS / "deploy.yml")
    [schedule] = deploy["on"]["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (minute, hour, day, month, weekday) == ("0", "10", "*", "*", "2")  # GitHub's cron is UTC; 2 is Tuesday
    assert deploy["on"]["workflow_dispatch"]["inputs"]["reason"]["required"] is True
    plan, prod = deploy["jobs"]["prod-plan"], deploy["jobs"]["prod"]
    assert plan["if"] == ("(github.event_name == 'schedule' || github.event_name == 'workflow_dispatch') && "
                          "github.ref == 'refs/heads/main'")
    assert plan["environment"] == "prod-plan"  # no reviewers: the plan is in the run's summary before they approve
    assert prod["needs"] == ["tests", "prod-plan"] and prod["environment"] == "prod"


def test_prod_runs_only_the_program_on_main() -> None:
    """A dispatch can name any ref (`gh workflow run deploy.yml --ref feature-x`): both jobs that hold Prod's
    passphrase run only from main, or a branch's program, release-policy checks and all, would run against Prod."""
    jobs = load(WORKFLOWS / "deploy.yml")["jobs"]
    for name in ("prod-plan", "prod"):
        condition = jobs[name]["if"]
        assert condition == "github.ref == 'refs/heads/main'" or condition.endswith(
            ") && github.ref == 'refs/heads/main'"), condition


def runs_pulumi(step: dict[str, Any]) -> bool:
    """A step that runs the pulumi CLI: itself, through the rollback-plan action, or through `release`."""
    commands = [line.strip() for line in step.get("run", "").splitlines()]
    return step.get("uses") == "./.github/actions/rollback-plan" or any(
        command.startswith(("pulumi ", ".venv/bin/release ")) for command in commands)


def test_a_job_holds_only_its_own_stacks_passphrase_and_only_its_pulumi_steps_see_it() -> None:
    """Each stack's passphrase is the secret of the job's GitHub environment: none is set for a whole workflow, a
    job that runs no stack gets none, and within a job only the steps that run Pulumi get it, not the checkout,
    the setup actions (third-party code) or the package installs before them."""
    passphrase = "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    deploy, pull_request = load(WORKFLOWS / "deploy.yml"), load(WORKFLOWS / "pull-request.yml")
    for workflow in (deploy, pull_request):
        assert "PULUMI_CONFIG_PASSPHRASE" not in workflow["env"]
    environments = {name: job.get("environment") for name, job in deploy["jobs"].items()}
    assert environments == {"sandbox": "sandbox", "dev": "dev", "test": "test", "prod-plan": "prod-plan",
                            "prod": "prod", "tests": None}
    stack_jobs = [job for name, job in deploy["jobs"].items() if name != "tests"] + [pull_request["jobs"]["preview"]]
    for job in stack_jobs:
        assert "PULUMI_CONFIG_PASSPHRASE" not in job["env"]
        pulumi_steps = [step for step in job["steps"] if runs_pulumi(step)]
        assert pulumi_steps
        for step in job["steps"]:
            given = step.get("env", {}).get("PULUMI_CONFIG_PASSPHRASE")
            assert given == (passphrase if step in pulumi_steps else None), step
    assert "secrets." not in str(deploy["jobs"]["tests"])
    assert pull_request["jobs"]["preview"]["environment"] == "preview-${{ matrix.stack }}"
    for name in ("affected", "comment", "test"):
        assert "PULUMI_CONFIG_PASSPHRASE" not in str(pull_request["jobs"][name])


def test_pull_requests_get_one_comment_edited_on_each_push() -> None:
    workflow = load(WORKFLOWS / "pull-request.yml")
    assert list(workflow["on"]) == ["pull_request"]
    affected, preview, comment = (workflow["jobs"][name] for name in ("affected", "preview", "comment"))
    assert "release-infra-affected-stacks --json" in affected["steps"][-1]["run"]
    assert preview["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.affected.outputs.stacks) }}"
    runs = "\n".join(step.get("run", "") for step in preview["steps"])
    assert "pulumi preview --diff" in runs
    plan = step_named(preview, "id", "plan")
    assert (plan["uses"], plan["with"]) == ("./.github/actions/rollback-plan", {"stack": "${{ matrix.stack }}"})
    assert comment["permissions"] == {"pull-requests": "write"}
    body, post = comment["steps"][-2:]
    marker = "<!-- release-infra preview -->"
    assert body["run"].splitlines()[1].strip() == f'echo "{marker}"'
    script = post["with"]["script"]
    assert post["uses"].startswith("actions/github-script@")
    assert f'const marker = "{marker}";' in script
    assert "github.rest.issues.updateComment" in script and "c.body.startsWith(marker)" in script


def test_actions_are_pinned_to_commits_and_pulumi_to_the_engine() -> None:
    """A tag can be moved to other code; a commit cannot. Each action is named by its commit, with the release it
    is in a comment, and one release has one commit in every file. The Pulumi CLI is the suite's own engine."""
    files = [*WORKFLOWS.glob("*.yml"), *ACTIONS.glob("*/action.yml")]
    uses = [line.split("uses:", 1)[1].strip() for path in files for line in path.read_text().splitlines()
            if re.match(r"\s*(- )?uses:", line)]
    remote = [use for use in uses if not use.startswith("./")]
    pins = [re.fullmatch(r"([\w-]+/[\w-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)", use) for use in remote]
    assert remote and all(pins), [use for use, pin in zip(remote, pins) if not pin]
    commits: dict[tuple[str, str], set[str]] = {}
    for pin in pins:
        commits.setdefault((pin[1], pin[3]), set()).add(pin[2])
    assert all(len(shas) == 1 for shas in commits.values()), commits
    assert not any(action.startswith("pulumi/") for action, _ in commits)
    setup = yaml.safe_load((ACTIONS / "setup" / "action.yml").read_text())
    [engine] = [step for step in setup["runs"]["steps"] if "scripts/bootstrap-engine.sh" in step.get("run", "")]
    assert engine["if"] == "inputs.pulumi == 'true'"


def go_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.search(r"^go (\d+(?:\.\d+)*)$", text, re.M)[1].split("."))


def test_nothing_deploys_untested() -> None:
    """Every change passes the tests before it reaches an environment (seed 001; seed 000: all tests pass before
    Prod): pull requests run `make test`, and every deploy job needs a `make test` of the same commit."""
    pull_request, deploy = load(WORKFLOWS / "pull-request.yml"), load(WORKFLOWS / "deploy.yml")
    for job in (pull_request["jobs"]["test"], deploy["jobs"]["tests"]):
        assert "if" not in job and "environment" not in job
        assert [step["run"] for step in job["steps"] if "run" in step] == ["make test"]
        assert {"uses": "./.github/actions/setup", "with": {"pulumi": "false"}} in job["steps"]  # the suite's own CLI
        # Go builds the engine, the gateway and actionlint: the newest `go` line of their modules.
        [go] = [step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-go@")]
        wanted = max(go_version(path.read_text()) for path in ROOT.glob("**/go.mod") if ".venv" not in path.parts)
        assert go_version((ROOT / go["with"]["go-version-file"]).read_text()) == wanted
    for name in (*STACKS, "prod-plan"):
        needs = deploy["jobs"][name]["needs"]
        assert "tests" in ([needs] if isinstance(needs, str) else needs), name


def test_every_job_has_a_timeout() -> None:
    """A hung job would hold its runner, and a hung `pulumi up` its stack's concurrency group, for GitHub's default
    six hours. `pulumi up` gets more than the longest update (a migration Job may run an hour, the catalogue's
    `deadline_seconds` being at most 3600, before the Deployments and the gateway roll) in a step timeout of its own,
    shorter than the job's: a step that times out fails, and the job still has time to announce it. A job whose
    setup provides the engine also has room for a cold build of it (the cache evicted)."""
    cold_engine_build, announce = 30, 15
    for path in WORKFLOWS.glob("*.yml"):
        for name, job in load(path)["jobs"].items():
            minutes = job.get("timeout-minutes")
            assert isinstance(minutes, int) and 0 < minutes < 360, (path.name, name, minutes)
            engine = any(step.get("uses") == "./.github/actions/setup" and step.get("with", {}).get("pulumi") != "false"
                         for step in job["steps"])
            up = [step["timeout-minutes"] for step in job["steps"] if step.get("id") == "up"]
            assert all(90 <= limit for limit in up), (name, up)
            needed = (sum(up) + announce if up else 0) + (cold_engine_build if engine else 0)
            assert minutes >= needed, (path.name, name, minutes, needed)


def test_run_steps_fail_when_any_command_of_a_pipe_fails() -> None:
    """A `run:` step without a shell runs as `bash -e`: `git diff ... | release-infra-affected-stacks` would pass
    with `[]` (no previews) when git fails. `shell: bash` adds pipefail, for every step of both workflows."""
    for path in WORKFLOWS.glob("*.yml"):
        workflow = load(path)
        assert workflow["defaults"] == {"run": {"shell": "bash"}}, path.name
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                if "run" in step:
                    assert runner_shell(step, job, workflow)[-2:] == ["-eo", "pipefail"]


def run_affected_step(repo: Path, base: str, head: str) -> tuple[subprocess.CompletedProcess[str], str]:
    workflow = load(WORKFLOWS / "pull-request.yml")
    job = workflow["jobs"]["affected"]
    step = step_named(job, "id", "affected")
    output = repo / "github-output"
    output.write_text("")
    result = subprocess.run([*runner_shell(step, job, workflow), "-c", step["run"]], cwd=repo, capture_output=True,
                            text=True, timeout=60, env={**os.environ, **step["env"], "BASE": base, "HEAD": head,
                                                        "GITHUB_OUTPUT": str(output)})
    return result, output.read_text()


@pytest.fixture
def renamed_program_file(tmp_path: Path) -> tuple[Path, str, str]:
    """A repository whose one commit moves infra/x.py to docs/x.py unchanged (git sees a rename)."""
    git = ["git", "-C", str(tmp_path), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "x.py").write_text("".join(f"VALUE_{n} = {n}\n" for n in range(20)))
    subprocess.run([*git, "add", "infra/x.py"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "base"], check=True)
    (tmp_path / "docs").mkdir()
    subprocess.run([*git, "mv", "infra/x.py", "docs/x.py"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "move"], check=True)
    base, head = (subprocess.run([*git, "rev-parse", ref], check=True, capture_output=True, text=True).stdout.strip()
                  for ref in ("HEAD~1", "HEAD"))
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    return tmp_path, base, head


def test_a_program_file_moved_out_of_the_program_still_previews_every_stack(
        renamed_program_file: tuple[Path, str, str]) -> None:
    """With rename detection `git diff --name-only` names only docs/x.py, which affects no stack; the program lost a
    file, so every stack is previewed."""
    result, output = run_affected_step(*renamed_program_file)
    assert result.returncode == 0, result.stderr
    assert output == 'stacks=["sandbox", "dev", "test", "prod"]\n'


def test_the_affected_stacks_step_fails_when_git_diff_does(renamed_program_file: tuple[Path, str, str]) -> None:
    """A base commit the checkout lacks is an error, not "no stack affected"."""
    repo, _, head = renamed_program_file
    result, output = run_affected_step(repo, "0" * 40, head)
    assert result.returncode != 0 and output == "", (result.returncode, output)


def run_rollback_plan(tmp_path: Path, preview: Path, status: int) -> tuple[subprocess.CompletedProcess[str], Path,
                                                                             Path]:
    """The rollback-plan action's script for stack prod, with a `pulumi` that prints `preview` and exits `status`."""
    action = yaml.safe_load((ACTIONS / "rollback-plan" / "action.yml").read_text())
    [step] = action["runs"]["steps"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(f"#!/bin/sh\ncat '{preview}'\nexit {status}\n")
    (bin_dir / "pulumi").chmod(0o755)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    summary, output = tmp_path / "summary.md", tmp_path / "github-output"
    summary.write_text("")
    output.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "STACK": "prod",
           "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output)}
    result = subprocess.run([*runner_shell(step), "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    return result, summary, output


def test_a_failed_preview_shows_the_engines_errors_and_fails_the_step(tmp_path: Path) -> None:
    """`pulumi preview --json` fails on a policy refusal; release-infra-rollback-plan is what prints the engine's
    errors from its output, so it runs anyway, and the step then fails with the preview's status and no plan."""
    result, summary, output = run_rollback_plan(tmp_path, ROOT / "tests/fixtures/previews/prod-friday-canary.json",
                                                255)
    assert result.returncode == 255, result.stderr
    assert "the preview of stack 'prod' failed" in result.stderr
    assert "no deploys on Friday (release_policy.no_deploy_weekdays)" in result.stderr
    assert summary.read_text() == "" and output.read_text() == ""


def test_a_preview_that_succeeds_puts_its_plan_in_the_summary(tmp_path: Path) -> None:
    result, summary, output = run_rollback_plan(tmp_path, ROOT / "tests/fixtures/previews/prod-flip.json", 0)
    assert result.returncode == 0, result.stderr
    assert output.read_text() == "plan=build/rollback-plan/prod.md\n"
    assert summary.read_text() == (tmp_path / "build/rollback-plan/prod.md").read_text() != ""


def test_the_comment_is_posted_by_live_runs_and_edits_only_this_workflows_comment() -> None:
    """A cancelled run (a newer push superseded it) posts nothing: `always()` would let it write "the preview did
    not run" over the newer run's comment. The comment to edit is the one this workflow's token posted, not any
    bot's comment that starts with the marker."""
    comment = load(WORKFLOWS / "pull-request.yml")["jobs"]["comment"]
    assert comment["if"] == "needs.affected.result == 'success' && !cancelled()"
    script = comment["steps"][-1]["with"]["script"]
    assert 'c.user?.login === "github-actions[bot]"' in script and "user.type" not in script


@pytest.mark.parametrize("sudo", [None, "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n"],
                         ids=["no sudo", "sudo asks for a password"])
def test_debian_packages_says_what_to_do_without_root_or_sudo(tmp_path: Path, sudo: str | None) -> None:
    """Not root and no passwordless sudo: one line naming the packages and how to get them, not `sudo: not found`
    (after which `make test` would run no test)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dpkg_query = shutil.which("dpkg-query")
    assert dpkg_query, "dpkg-query is missing: make test needs Debian's apt"
    (bin_dir / "dpkg-query").symlink_to(dpkg_query)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")  # not root, whoever runs the tests
    (bin_dir / "id").chmod(0o755)
    if sudo:
        (bin_dir / "sudo").write_text(sudo)
        (bin_dir / "sudo").chmod(0o755)
    result = subprocess.run([shutil.which("bash") or "bash", str(ROOT / "scripts" / "debian-packages.sh"),
                             "release-infra-no-such-package"], env={"PATH": str(bin_dir)}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("debian-packages: ") and "release-infra-no-such-package" in line
    assert "root" in line and "passwordless sudo" in line


def debian_packages_as_root(tmp_path: Path, apt_get: str) -> tuple[list[str], dict[str, str], Path]:
    """scripts/debian-packages.sh with its policy-rc.d in tmp_path (not /usr/sbin), run as root (`id` says 0) with
    a fake `apt-get`, for a package that is not installed; the command, its environment and the policy file."""
    policy = tmp_path / "policy-rc.d"
    script = (ROOT / "scripts" / "debian-packages.sh").read_text()
    assert script.count("\npolicy=/usr/sbin/policy-rc.d\n") == 1
    (tmp_path / "debian-packages.sh").write_text(script.replace("\npolicy=/usr/sbin/policy-rc.d\n",
                                                                f"\npolicy={policy}\n"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in {"id": "#!/bin/sh\necho 0\n", "apt-get": apt_get}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "RELEASE_INFRA_APT_LOCKED": "1"}
    return [shutil.which("bash") or "bash", str(tmp_path / "debian-packages.sh"), "release-infra-no-such-package"], \
        env, policy


def test_debian_packages_removes_its_policy_rc_d_when_interrupted(tmp_path: Path) -> None:
    """policy-rc.d keeps the install's services from starting; one left behind by a Ctrl-C would keep every service
    installed later on the machine from starting."""
    started = tmp_path / "installing"
    # The install's stand-in copies the policy and sleeps in one process, so the interrupt finds it sleeping: with
    # `cp` and `sleep` as two commands, an interrupt between them left sh waiting 60 s for a sleep it never saw.
    part = tmp_path / "installing.part"  # renamed when whole: the test reads it once it exists
    copy_then_sleep = (f"import os, shutil, time; shutil.copy({str(tmp_path / 'policy-rc.d')!r}, {str(part)!r}); "
                       f"os.replace({str(part)!r}, {str(started)!r}); time.sleep(60)")
    command, env, policy = debian_packages_as_root(
        tmp_path, f'#!/bin/sh\ncase "$*" in *install*) exec {sys.executable} -c "{copy_then_sleep}";; esac\n')
    # As from a terminal, where Ctrl-C is not ignored: a child inherits an ignored SIGINT (and a non-interactive
    # shell cannot trap one ignored on entry), so whatever the test process was left with must not decide this.
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for _ in range(600):
            if started.exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        assert started.read_text() == "#!/bin/sh\nexit 101\n"  # in place while apt-get installs
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole process group
        assert process.wait(timeout=30) != 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not policy.exists()


def test_debian_packages_removes_its_policy_rc_d_and_fails_when_the_install_fails(tmp_path: Path) -> None:
    command, env, policy = debian_packages_as_root(tmp_path, '#!/bin/sh\ncase "$*" in *install*) exit 100;; esac\n')
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 100, result.stderr
    assert not policy.exists()


def run_tested_program_step(repo: Path, applied: str | None) -> subprocess.CompletedProcess[str]:
    """The step in ``repo``, with a `pulumi` whose `stack output --stack test program_digest` answers ``applied``
    (None: a stack whose outputs have no such key). The real CLI's answer is the engine tier's (test_engine.py)."""
    workflow = load(WORKFLOWS / "deploy.yml")
    job = workflow["jobs"]["prod-plan"]
    step = step_named(job, "name", "the program Test ran")
    summary, bin_dir = repo / "summary", repo.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    cli = bin_dir / "pulumi"
    answer = f'[ "$*" = "stack output --stack test program_digest" ] && echo {applied} && exit 0\n'
    cli.write_text("#!/bin/sh\n" + (answer if applied else "") + "echo 'error: no output' >&2\nexit 255\n")
    cli.chmod(0o755)
    return subprocess.run([*runner_shell(step, job, workflow), "-c", step["run"]], cwd=repo, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary),
                                                      "PATH": f"{bin_dir}:{os.environ['PATH']}"})


class Checkout:
    """A checkout whose release candidates v2.2.0-rc.1 and v2.3.0-rc.1 change the program; ``commit(path,
    text)`` adds a commit on top, and ``digests`` holds the program's digest at each tag."""

    def __init__(self, root: Path) -> None:
        self.root, self.digests = root, {}  # type: Path, dict[str, str]
        self.git = ["git", "-C", str(root), "-c", "user.name=test", "-c", "user.email=test@example.com"]
        subprocess.run(["git", "init", "--quiet", str(root)], check=True)
        (root / ".venv").symlink_to(ROOT / ".venv")
        self.commit("Pulumi.yaml", "name: release-infra\n")
        self.commit("infra/program.py", "VERSION = 1\n", tag="v2.2.0-rc.1")
        self.commit("catalogue.yaml", "services: {}\n", tag="v2.3.0-rc.1")

    def commit(self, path: str, text: str, tag: str | None = None) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(text)
        subprocess.run([*self.git, "add", path], check=True)
        subprocess.run([*self.git, "commit", "--quiet", "-m", path], check=True)
        if tag:
            subprocess.run([*self.git, "tag", tag], check=True)
            self.digests[tag] = self.digest()

    def digest(self) -> str:
        return program_digest.__wrapped__(self.root)


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    return Checkout(tmp_path / "checkout")


@pytest.mark.parametrize(("path", "refused"), [
    ("Pulumi.prod.yaml", False),  # the promotion itself
    ("docs/release.md", False),
    ("Pulumi.dev.yaml", False),
    ("infra/program.py", True),  # Test never ran this program
    ("catalogue.yaml", True),
])
def test_prod_runs_only_the_program_test_applied(checkout: Checkout, path: str, refused: bool) -> None:
    checkout.commit(path, "changed after the release candidate\n")
    result = run_tested_program_step(checkout.root, checkout.digests["v2.3.0-rc.1"])
    assert (result.returncode != 0) is refused, result.stdout + result.stderr
    if refused:
        assert (f"::error::Prod runs only the program Test applied; main's is {checkout.digest()}, and Test's last "
                f"update applied another ({checkout.digests['v2.3.0-rc.1']}): main changed since v2.3.0-rc.1: "
                f"{path}; tag a release candidate and let Test deploy it first") in result.stdout
    else:
        assert (checkout.root / "summary").read_text() == (
            f"Prod's program is the one Test applied last ({checkout.digests['v2.3.0-rc.1']})\n")


def test_a_release_candidate_test_has_not_applied_is_refused(checkout: Checkout) -> None:
    """Test's update of v2.3.0-rc.1 failed (or still runs): its outputs still name v2.2.0-rc.1's program. The
    newest tag alone would have let Prod run a program Test never applied."""
    result = run_tested_program_step(checkout.root, checkout.digests["v2.2.0-rc.1"])
    assert result.returncode == 1
    assert (f"::error::Prod runs only the program Test applied; main's is {checkout.digests['v2.3.0-rc.1']}, and "
            f"Test's last update applied another ({checkout.digests['v2.2.0-rc.1']}): main's program is "
            "v2.3.0-rc.1's: let Test's deployment of v2.3.0-rc.1 finish, or run it again") in result.stdout


def test_test_outputs_without_a_program_are_refused(checkout: Checkout) -> None:
    result = run_tested_program_step(checkout.root, None)
    assert result.returncode == 1
    assert (f"::error::Prod runs only the program Test applied; main's is {checkout.digest()}, and Test's outputs "
            "cannot be read or name no program (error: no output): main's program is v2.3.0-rc.1's: let Test's "
            "deployment of v2.3.0-rc.1 finish, or run it again") in result.stdout


def test_a_large_change_since_the_release_candidate_is_named_by_its_first_ten_files(checkout: Checkout) -> None:
    """Under pipefail, a writer cut off by `head` would end the step silently, without its message."""
    for number in range(3000):
        (checkout.root / "core" / "generated" / f"part_{number:04}.py").parent.mkdir(parents=True, exist_ok=True)
        (checkout.root / "core" / "generated" / f"part_{number:04}.py").write_text(f"PART = {number}\n" * 20)
    checkout.commit("core/generated/__init__.py", "")
    subprocess.run([*checkout.git, "add", "core"], check=True)
    subprocess.run([*checkout.git, "commit", "--quiet", "-m", "generated"], check=True)
    result = run_tested_program_step(checkout.root, checkout.digests["v2.3.0-rc.1"])
    assert result.returncode == 1, result.stdout + result.stderr
    first = " ".join(["core/generated/__init__.py", *(f"core/generated/part_{number:04}.py" for number in range(9))])
    assert f"main changed since v2.3.0-rc.1: {first}; tag a release candidate" in result.stdout, result.stdout


def test_prod_without_a_release_candidate_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit",
                    "--quiet", "--allow-empty", "-m", "first"], check=True)
    (root / ".venv").symlink_to(ROOT / ".venv")
    (root / "Pulumi.yaml").write_text("name: release-infra\n")
    result = run_tested_program_step(root, "sha256:" + "0" * 64)
    assert result.returncode == 1
    assert ("there is no release-candidate tag (v*.*.*-rc*): tag one and let Test deploy it first"
            in result.stdout), result.stdout + result.stderr
