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

from local.processes import free_port
from local.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "infra" / "deploy.sh"
STANDIN = Path(__file__).parent / "standin"
GROUP = "rg-webhooks"


class Run:
    def __init__(self, result: subprocess.CompletedProcess[str], state: Path, vault: Path) -> None:
        self.state = state
        self.vault = vault
        self.code = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr
        log = state / "calls.jsonl"
        self.calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def called(self, *prefix: str) -> list[list[str]]:
        return [call for call in self.calls if call[: len(prefix)] == list(prefix)]

    def parameter_files(self) -> list[tuple[dict[str, Any], str]]:
        """Each `@file` az was given: its content and its mode."""
        found = sorted(self.state.glob("parameters-*.json"), key=lambda p: int(p.stem.split("-")[1]))
        return [(json.loads(p.read_text()), p.with_suffix(".mode").read_text()) for p in found]


def parameters_file(folder: Path, **values: Any) -> Path:
    file = folder / f"parameters-{len(list(folder.glob('parameters-*')))}.json"
    tenant = "https://fabrikam.sharepoint.com"
    parameters = {"namePrefix": "m365hooks", "sharePointTenantUrl": tenant, **values}
    file.write_text(json.dumps({"parameters": {k: {"value": v} for k, v in parameters.items()}}))
    return file


@pytest.fixture
def deploy_sh(tmp_path):
    """Runs deploy.sh with the stand-in az. A deploy gets a parameters file naming a real-looking
    tenant unless the test passes its own (the shipped one names the placeholder, on purpose)."""

    def run(*args: str, scenario: dict[str, Any] | None = None, path: str | None = None, **env: str) -> Run:
        deploying = len(args) >= 2 and args[0] not in ("smoke", "package") and "--parameters" not in args
        if deploying:
            args = (*args, "--parameters", str(parameters_file(tmp_path)))
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
                "PATH": f"{STANDIN}{os.pathsep}{path or os.environ['PATH']}",
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
        "identityClientId": "33333333-3333-3333-3333-333333333333",
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
    run = deploy_sh(GROUP, "northcentralus", "--what-if", scenario={"groupExists": False})
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


def test_the_teams_certificate_is_made_once_self_signed_and_exportable(deploy_sh, app):
    first = deploy_sh(GROUP, "westus", scenario={"outputs": outputs_for(app.functions_url)})
    assert first.code == 0, first.stderr
    [create] = first.called("keyvault", "certificate", "create")
    assert "teams-notifications" in create
    policy = json.loads((first.vault / "teams-certificate").read_text())
    assert policy["issuerParameters"]["name"] == "Self"
    assert policy["keyProperties"] == {
        "exportable": True,
        "keyType": "RSA",
        "keySize": 2048,
        "reuseKey": False,
    }
    assert policy["secretProperties"]["contentType"] == "application/x-pkcs12"
    again = deploy_sh(GROUP, "westus", scenario={"outputs": outputs_for(app.functions_url)})
    assert again.code == 0, again.stderr
    assert not again.called("keyvault", "certificate", "create")


def test_a_pipeline_signed_in_as_a_service_principal_is_granted_as_one(deploy_sh, app):
    scenario = {"servicePrincipal": True, "outputs": outputs_for(app.functions_url)}
    run = deploy_sh(GROUP, "westus", scenario=scenario)
    assert run.code == 0, run.stderr
    [create] = run.called("deployment", "sub", "create")
    assert "deployerPrincipalId=22222222-2222-2222-2222-222222222222" in create
    assert "deployerPrincipalType=ServicePrincipal" in create


def test_a_team_that_holds_only_a_group_deploys_into_it_in_its_region(deploy_sh, app):
    run = deploy_sh(
        "into", GROUP, scenario={"groupLocation": "swedencentral", "outputs": outputs_for(app.functions_url)}
    )
    assert run.code == 0, run.stderr
    [create] = run.called("deployment", "group", "create")
    assert create[create.index("--resource-group") + 1] == GROUP
    assert create[create.index("--template-file") + 1].endswith("infra/main.bicep")
    assert not run.called("deployment", "sub")  # nothing at subscription scope
    assert "into the existing group rg-webhooks (swedencentral)" in run.stdout
    assert "smoke check passed" in run.stdout


def test_what_if_into_a_group_previews_at_group_scope(deploy_sh):
    run = deploy_sh("into", GROUP, "--what-if")
    assert run.code == 0, run.stderr
    [what_if] = run.called("deployment", "group", "what-if")
    assert what_if[what_if.index("--resource-group") + 1] == GROUP
    assert not [call for call in run.calls if "create" in call or "config-zip" in call]


def test_into_a_group_that_does_not_exist_stops_at_once(deploy_sh):
    run = deploy_sh("into", GROUP, scenario={"groupExists": False})
    assert run.code == 1
    assert "does not exist" in run.stderr
    assert not run.called("deployment")


def test_unregistered_resource_providers_are_named_with_the_command_for_the_subscription_owner(deploy_sh):
    run = deploy_sh("into", GROUP, scenario={"unregistered": ["Microsoft.Web", "Microsoft.KeyVault"]})
    assert run.code == 1
    assert "az provider register --namespace Microsoft.Web" in run.stderr
    assert "az provider register --namespace Microsoft.KeyVault" in run.stderr
    assert "Microsoft.Storage" not in run.stderr
    assert not run.called("deployment")


def test_a_rerun_into_another_region_stops_before_deploying(deploy_sh):
    moved_group = deploy_sh(GROUP, "eastus", scenario={"groupLocation": "westus"})
    assert moved_group.code == 1
    assert "is in westus, not eastus" in moved_group.stderr
    assert not moved_group.called("deployment")

    elsewhere = {"groupExists": False, "existingApp": ["func-m365hooks-abc", "North Europe"]}
    moved_app = deploy_sh(GROUP, "westus", scenario=elsewhere)
    assert moved_app.code == 1
    assert "func-m365hooks-abc is in North Europe, not westus" in moved_app.stderr
    assert not moved_app.called("deployment")


def test_a_rerun_keeps_the_settings_added_by_hand_without_putting_them_on_a_command_line(deploy_sh, app):
    scenario = {
        "existingApp": ["func-m365hooks-abc", "West US"],
        "appSettings": [{"name": "MY_FEATURE_FLAG", "value": "on", "slotSetting": False}],
        "outputs": outputs_for(app.functions_url),
    }
    run = deploy_sh(GROUP, "westus", scenario=scenario)
    assert run.code == 0, run.stderr
    [create] = run.called("deployment", "sub", "create")
    assert not any("MY_FEATURE_FLAG" in arg or "=on" in arg for arg in create)
    files = run.parameter_files()
    [(settings, mode)] = [(p, m) for p, m in files if "existingAppSettings" in p["parameters"]]
    assert settings["parameters"]["existingAppSettings"]["value"] == {"MY_FEATURE_FLAG": "on"}
    assert mode == "0o600"
    private = [Path(arg[1:]) for arg in create if arg.startswith("@") and "parameters-" not in arg]
    assert private and not any(path.exists() for path in private)  # gone once az has read it


def test_the_placeholder_tenant_is_refused_before_anything_changes(deploy_sh, tmp_path):
    shipped = ROOT / "infra" / "main.parameters.json"
    run = deploy_sh(GROUP, "westus", "--parameters", str(shipped))
    assert run.code == 1
    assert "contoso.sharepoint.com" in run.stderr and "placeholder" in run.stderr
    assert not run.called("deployment")
    not_a_tenant = parameters_file(tmp_path, sharePointTenantUrl="http://fabrikam.example.com")
    assert deploy_sh(GROUP, "westus", "--parameters", str(not_a_tenant)).code == 1


def test_missing_curl_or_python3_is_reported_before_any_az_call(deploy_sh, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if tool.name != "curl" and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    run = deploy_sh(GROUP, "westus", path=str(bin_dir))
    assert run.code == 1
    assert "curl not found" in run.stderr
    assert run.calls == []


def test_the_deployers_own_403_is_not_retried_and_says_whose_it_is(deploy_sh, app):
    scenario = {"zipDeployerForbidden": True, "outputs": outputs_for(app.functions_url)}
    run = deploy_sh(GROUP, "westus", scenario=scenario)
    assert run.code == 1
    assert len(run.called("functionapp", "deployment", "source", "config-zip")) == 1
    assert "your own account" in run.stderr and "not on the app's identity" in run.stderr


def test_azs_own_health_probe_failing_after_the_upload_leaves_the_verdict_to_the_smoke_check(deploy_sh, app):
    scenario = {"zipUnhealthy": True, "outputs": outputs_for(app.functions_url)}
    run = deploy_sh(GROUP, "westus", scenario=scenario)
    assert run.code == 0, run.stderr
    assert "the smoke check decides" in run.stderr
    assert "smoke check passed" in run.stdout


def test_the_end_of_a_deploy_prints_every_url_the_key_command_and_the_next_steps(deploy_sh, app):
    run = deploy_sh(GROUP, "westus", scenario={"outputs": outputs_for(app.functions_url)})
    assert run.code == 0, run.stderr
    base = app.functions_url
    for line in (
        f"Management API:    {base}/api",
        f"Console:           {base}/api/console/",
        f"SharePoint:      {base}/api/notifications/sharepoint",
        f"Graph:           {base}/api/notifications/graph",
        f"Graph lifecycle: {base}/api/notifications/graph/lifecycle",
        f"az functionapp keys list -g {GROUP} -n func-m365hooks-abc --query functionKeys.default -o tsv",
        "Privileged Role Administrator or Global Administrator",
        "before the first subscription",
    ):
        assert line in run.stdout, line


def test_smoke_on_a_group_that_does_not_exist_fails_at_once(deploy_sh):
    run = deploy_sh("smoke", GROUP, scenario={"groupExists": False}, SMOKE_TIMEOUT="300")
    assert run.code == 1
    assert "does not exist" in run.stderr
    assert not run.called("deployment")


def test_smoke_on_a_group_without_the_app_fails_at_once(deploy_sh):
    run = deploy_sh("smoke", GROUP, SMOKE_TIMEOUT="300")  # no outputs: no deployment in the group
    assert run.code == 1
    assert "deploy first" in run.stderr


def test_a_multi_tenant_deploy_registers_the_app_once_and_trusts_the_app_identity(deploy_sh, app, tmp_path):
    parameters = parameters_file(tmp_path, tenancy="multi")
    scenario = {"outputs": outputs_for(app.functions_url)}
    run = deploy_sh(GROUP, "westus", "--parameters", str(parameters), scenario=scenario)
    assert run.code == 0, run.stderr
    [created] = run.called("ad", "app", "create")
    assert created[created.index("--sign-in-audience") + 1] == "AzureADMultipleOrgs"
    granted = [
        call[call.index("--api-permissions") + 1] for call in run.called("ad", "app", "permission", "add")
    ]
    assert "role-ChannelMessage.Read.All=Role" in granted and "role-Mail.Read=Role" in granted
    [deployment] = run.called("deployment", "sub", "create")
    assert "multiTenantAppId=44444444-4444-4444-4444-444444444444" in deployment
    [update] = run.called("ad", "app", "update")
    assert update[update.index("--web-redirect-uris") + 1] == f"{app.functions_url}/api/consent"
    credential, mode = run.parameter_files()[-1]
    assert mode == "0o600"
    assert credential == {
        "name": "function-app",
        "issuer": "https://login.microsoftonline.com/55555555-5555-5555-5555-555555555555/v2.0",
        "subject": "11111111-1111-1111-1111-111111111111",
        "audiences": ["api://AzureADTokenExchange"],
        "description": "The m365-webhooks function app's managed identity",
    }

    again = deploy_sh(
        GROUP,
        "westus",
        "--parameters",
        str(parameters),
        scenario={
            **scenario,
            "multiTenantApp": "44444444-4444-4444-4444-444444444444",
            "federatedCredential": True,
        },
    )
    assert again.code == 0, again.stderr
    assert not again.called("ad", "app", "create") and not again.called(
        "ad", "app", "federated-credential", "create"
    )


def test_a_deployer_who_may_not_register_apps_gets_the_commands_and_nothing_is_deployed(deploy_sh, tmp_path):
    parameters = parameters_file(tmp_path, tenancy="multi")
    run = deploy_sh(GROUP, "westus", "--parameters", str(parameters), scenario={"appCreateForbidden": True})
    assert run.code == 1
    assert (
        "az ad app create --display-name m365hooks-multitenant --sign-in-audience AzureADMultipleOrgs"
        in run.stderr
    )
    assert "multiTenantAppId" in run.stderr and "Application Developer" in run.stderr
    assert not run.called("deployment", "sub", "create")


def test_a_single_tenant_deploy_registers_nothing(deploy_sh, app):
    run = deploy_sh(GROUP, "westus", scenario={"outputs": outputs_for(app.functions_url)})
    assert run.code == 0, run.stderr
    assert not [call for call in run.calls if call[:2] == ["ad", "app"]]
