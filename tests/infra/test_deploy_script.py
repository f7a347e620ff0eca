"""infra/deploy.sh offline, with a stand-in `az` on PATH that records every call and fails on demand.

The smoke check runs for real against the local Functions host.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.stack import Stack, free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "infra" / "deploy.sh"
STANDIN = Path(__file__).parent / "standin"
GROUP = "rg-webhooks"


class Run:
    def __init__(self, result: subprocess.CompletedProcess[str], state: Path, vault: Path) -> None:
        self.vault = vault
        self.code = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr
        log = state / "calls.jsonl"
        self.calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def called(self, *prefix: str) -> list[list[str]]:
        return [call for call in self.calls if call[: len(prefix)] == list(prefix)]


@pytest.fixture
def deploy_sh(tmp_path):
    def run(*args: str, scenario: dict[str, Any] | None = None, **env: str) -> Run:
        state = tmp_path / f"az-{len(list(tmp_path.glob('az-*')))}"
        state.mkdir()
        vault = tmp_path / "vault"
        vault.mkdir(exist_ok=True)
        result = subprocess.run(
            ["bash", str(DEPLOY), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={
                **os.environ,
                "PATH": f"{STANDIN}{os.pathsep}{os.environ['PATH']}",
                "AZ_STANDIN_DIR": str(state),
                "AZ_STANDIN_VAULT": str(vault),
                "AZ_STANDIN_SCENARIO": json.dumps(scenario or {}),
                "PACKAGE_RETRY_DELAY": "0.1",
                "SMOKE_INTERVAL": "0.2",
                **env,
            },
        )
        return Run(result, state, vault)

    return run


@pytest.fixture(scope="module")
def app():
    """The function app itself, served by the local host: what the smoke check calls."""
    with Stack(delivery_interval=3600) as stack:
        yield stack


def outputs_for(base_url: str) -> dict[str, str]:
    return {
        "functionAppName": "func-m365hooks-abc",
        "functionAppUrl": base_url,
        "notificationUrl": f"{base_url}/api/notifications/sharepoint",
        "identityPrincipalId": "11111111-1111-1111-1111-111111111111",
        "vaultName": "kvm365hooksabc",
    }


def test_not_being_logged_in_stops_before_any_other_call_and_names_az_login(deploy_sh):
    run = deploy_sh(GROUP, "westus", scenario={"loggedIn": False})
    assert run.code == 1
    assert "az login" in run.stderr
    assert run.calls == [["account", "show", "--output", "none"]]


def test_a_missing_bicep_is_reported_up_front_with_the_install_command(deploy_sh):
    run = deploy_sh(GROUP, "westus", scenario={"bicep": False})
    assert run.code == 1
    assert "az bicep install" in run.stderr
    assert not run.called("deployment")


def test_what_if_on_a_missing_group_previews_at_subscription_scope_and_creates_nothing(deploy_sh):
    run = deploy_sh(GROUP, "northcentralus", "--what-if")
    assert run.code == 0, run.stderr
    [what_if] = run.called("deployment", "sub", "what-if")
    assert what_if[what_if.index("--template-file") + 1].endswith("infra/subscription.bicep")
    assert f"resourceGroupName={GROUP}" in what_if
    assert "location=northcentralus" in what_if
    assert not [call for call in run.calls if "create" in call or "config-zip" in call]
    assert f"resourceGroups/{GROUP}" in run.stdout


def test_a_deploy_whose_first_package_upload_gets_403_retries_and_succeeds(deploy_sh, app):
    run = deploy_sh(GROUP, "westus", scenario={"zip403": 2, "outputs": outputs_for(app.functions_url)})
    assert run.code == 0, run.stderr
    assert len(run.called("functionapp", "deployment", "source", "config-zip")) == 3
    assert "propagate" in run.stderr
    assert len(run.called("deployment", "sub", "create")) == 1
    assert "smoke check passed" in run.stdout
    assert "validation echo: 200, text/plain" in run.stdout


def test_a_package_deploy_that_fails_for_another_reason_is_not_retried(deploy_sh, app):
    run = deploy_sh(
        GROUP,
        "westus",
        scenario={"zipError": "Deployment failed: bad zip", "outputs": outputs_for(app.functions_url)},
    )
    assert run.code == 1
    assert len(run.called("functionapp", "deployment", "source", "config-zip")) == 1
    assert "bad zip" in run.stderr


def test_the_smoke_check_runs_after_every_deploy_and_fails_it_when_the_app_never_comes_up(deploy_sh):
    dead = f"http://127.0.0.1:{free_port()}"
    run = deploy_sh(GROUP, "westus", scenario={"outputs": outputs_for(dead)}, SMOKE_TIMEOUT="1")
    assert run.code == 1
    assert "never answered 200" in run.stderr
    assert len(run.called("functionapp", "deployment", "source", "config-zip")) == 1


def test_the_smoke_command_checks_health_and_the_validation_echo(deploy_sh, app):
    run = deploy_sh("smoke", GROUP, scenario={"outputs": outputs_for(app.functions_url)})
    assert run.code == 0, run.stderr
    assert "health: 200" in run.stdout
    assert "token echoed" in run.stdout
    assert run.calls[0] == ["account", "show", "--output", "none"]


def test_the_smoke_command_fails_against_an_app_that_never_answers(deploy_sh):
    dead = f"http://127.0.0.1:{free_port()}"
    run = deploy_sh("smoke", GROUP, scenario={"outputs": outputs_for(dead)}, SMOKE_TIMEOUT="1")
    assert run.code == 1
    assert "smoke check FAILED" in run.stderr


def test_the_usage_text_is_prose_not_code(deploy_sh):
    run = deploy_sh()
    assert run.code == 2
    assert "infra/deploy.sh <resource-group> <location>" in run.stderr
    assert "set -euo" not in run.stderr
    assert not run.calls


def test_the_403_retries_are_bounded_in_time(deploy_sh, app):
    run = deploy_sh(
        GROUP,
        "westus",
        scenario={"zip403": 1000, "outputs": outputs_for(app.functions_url)},
        PACKAGE_DEPLOY_TIMEOUT="1",
    )
    assert run.code == 1
    assert "still refused (403)" in run.stderr
    assert not run.stdout.count("smoke check passed")


def test_the_sealing_key_ring_is_made_once_from_a_private_file_and_never_replaced(deploy_sh, app):
    scenario = {"keyVault403": 1, "outputs": outputs_for(app.functions_url)}
    first = deploy_sh(GROUP, "westus", scenario=scenario, PACKAGE_RETRY_DELAY="0")
    assert first.code == 0, first.stderr
    [create] = first.called("deployment", "sub", "create")
    assert "deployerPrincipalId=11111111-1111-1111-1111-111111111111" in create
    assert "deployerPrincipalType=User" in create
    [_, written] = first.called("keyvault", "secret", "set")  # one 403 while the role propagates
    assert "--file" in written and not any(arg.startswith("k1=") for arg in written)
    ring = (first.vault / "sealing-keys").read_text()
    assert ring.startswith("k1=") and len(base64.b64decode(ring[3:])) == 32

    again = deploy_sh(GROUP, "westus", scenario={"outputs": outputs_for(app.functions_url)})
    assert again.code == 0, again.stderr
    assert not again.called("keyvault", "secret", "set")
    assert (again.vault / "sealing-keys").read_text() == ring


def test_a_pipeline_signed_in_as_a_service_principal_is_granted_as_one(deploy_sh, app):
    scenario = {"servicePrincipal": True, "outputs": outputs_for(app.functions_url)}
    run = deploy_sh(GROUP, "westus", scenario=scenario)
    assert run.code == 0, run.stderr
    [create] = run.called("deployment", "sub", "create")
    assert "deployerPrincipalId=22222222-2222-2222-2222-222222222222" in create
    assert "deployerPrincipalType=ServicePrincipal" in create
