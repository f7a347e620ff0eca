"""Offline checks of infra/: it parses, Checkov passes, and it agrees with the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

import function_app
from functions.core import settings as settings_module
from functions.core.resources import QUEUES, TABLES
from functions.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHECKOV_PYTHON = ROOT / ".venv-checkov" / "bin" / "python"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"

# Read only with SHAREPOINT_AUTH=certificate, which the Bicep does not use (managed identity).
CERTIFICATE_ONLY = {settings_module.SHAREPOINT_TENANT_ID, settings_module.SHAREPOINT_CERTIFICATE_PATH}


@pytest.fixture(scope="module")
def bicep() -> dict:
    if not CHECKOV_PYTHON.exists():
        pytest.fail(".venv-checkov is missing: run `make setup`")
    result = subprocess.run(
        [str(CHECKOV_PYTHON), str(ROOT / "tests" / "infra" / "bicep_to_json.py"), str(INFRA)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"a .bicep file did not parse with pycep-parser:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def app_settings(bicep) -> dict:
    """The settings the template sets: `ownSettings`, which the `appsettings` config merges over
    the ones already on the app."""
    module = bicep["modules/functionapp.bicep"]
    config = module["resources"]["appSettings"]["config"]
    assert config["properties"]["function"]["type"] == "union"
    return module["variables"]["ownSettings"]["value"]


class RecordingEnviron(dict):
    """Remembers every setting name the settings module asks for."""

    def __init__(self, values):
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)


def test_every_bicep_file_parses_with_pycep(bicep):
    assert set(bicep) == {
        "main.bicep",
        "modules/functionapp.bicep",
        "modules/keyvault.bicep",
        "modules/monitoring.bicep",
        "modules/roles.bicep",
        "modules/storage.bicep",
        "subscription.bicep",
    }


def test_checkov_finds_no_failed_check_and_every_skip_says_why():
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(INFRA),
            "--framework",
            "bicep",
            "--quiet",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and summary["failed"] == 0
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    for path in INFRA.rglob("*.bicep"):
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=CKV2?_\w+:\s*\S.{10,}", line), (
                    f"a skip without a reason: {line}"
                )


def test_the_bicep_sets_every_setting_the_code_reads(app_settings):
    environ = RecordingEnviron(dict.fromkeys(app_settings, "https://x.example"))
    environ.update(
        {
            "SHAREPOINT_AUTH": "managed_identity",
            "RENEWAL_WINDOW_DAYS": "45",
            "RENEWAL_SCHEDULE": "0 0 */6 * * *",
            "SWEEP_SCHEDULE": "0 0 * * * *",
            "SWEEP_MAX_AGE_HOURS": "24",
            "GRAPH_SWEEP_MAX_AGE_HOURS": "6",
            "SINK_DISABLE_AFTER_HOURS": "72",
            "SINK_RETRY_BASE_SECONDS": "30",
            "SINK_CATCH_UP_SCHEDULE": "0 */5 * * * *",
            "SINK_SEALING_KEYS": "",
            "SILENT_AFTER_HOURS": "24",
            "ALERT_SINK_TYPE": "teams-workflow",
            "ALERT_AFTER_FAILED_READS": "5",
            "TEAMS_KEEP_PREVIEW": "true",
            "TENANCY": "single",
        }
    )
    Settings.from_environ(environ)
    # The emulator's keys URL and login authority are refused outside the local stack.
    local_only = {settings_module.ALLOW_LOOPBACK_HTTP_SINKS, settings_module.IDENTITY_KEYS_URL}
    local_only |= {settings_module.LOGIN_AUTHORITY}
    # Set by hand: the previous certificate while a rollover lasts (docs/teams.md), and the
    # multi-tenant app's certificate where federated credentials are not offered (docs/tenants.md).
    local_only |= {settings_module.TEAMS_PREVIOUS_CERTIFICATE, settings_module.MULTI_TENANT_CERTIFICATE_PATH}
    expected = environ.asked - CERTIFICATE_ONLY - local_only - {settings_module.STORAGE_CONNECTION}
    assert expected - set(app_settings) == set()
    assert not local_only & set(app_settings)  # plain-http sinks are for the local stack only
    assert app_settings["SHAREPOINT_AUTH"] == "managed_identity"
    assert app_settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert "AzureWebJobsStorage" not in app_settings  # identity-based, never a connection string


def test_binding_expressions_name_settings_the_bicep_sets(app_settings):
    expressions = set()
    for function in function_app.app.get_functions():
        expressions |= set(re.findall(r"%([^%]+)%", function.get_function_json()))
    assert expressions and expressions <= set(app_settings)


def test_the_bicep_creates_every_queue_and_table_the_code_uses(bicep):
    variables = bicep["main.bicep"]["variables"]
    assert set(variables["queueNames"]["value"]) == set(QUEUES)
    assert set(variables["tableNames"]["value"]) == set(TABLES)
    passed = bicep["main.bicep"]["modules"]["storage"]["config"]["params"]
    assert (passed["queueNames"], passed["tableNames"]) == ("queueNames", "tableNames")
    resources = bicep["modules/storage.bicep"]["resources"]
    assert resources["queues"]["config"]["loop_type"]["detail"]["array_name"] == "queueNames"
    assert resources["tables"]["config"]["loop_type"]["detail"]["array_name"] == "tableNames"


def test_the_storage_account_allows_identity_only_and_tls_1_2(bicep):
    properties = bicep["modules/storage.bicep"]["resources"]["storage"]["config"]["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["minimumTlsVersion"] == "TLS1_2"


def test_the_function_app_is_flex_consumption_python_https_only(bicep):
    resources = bicep["modules/functionapp.bicep"]["resources"]
    assert resources["plan"]["config"]["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    site = resources["functionApp"]["config"]
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    properties = site["properties"]
    assert properties["httpsOnly"] is True
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    assert properties["siteConfig"]["http20Enabled"] is True
    assert properties["functionAppConfig"]["runtime"]["name"] == "python"


def test_the_role_assignments_cover_what_the_code_does_and_nothing_more(bicep):
    roles = bicep["modules/roles.bicep"]
    role_ids = {v["value"] for v in roles["variables"].values()}
    assert role_ids == {
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner: host leases, package
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor: notifications
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor: subscriptions etc.
        "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher: App Insights (AAD)
    }
    assignments = [
        r for r in roles["resources"].values() if r["type"] == "Microsoft.Authorization/roleAssignments"
    ]
    assert len(assignments) == 4
    for assignment in assignments:
        name = json.dumps(assignment["config"]["name"])
        assert "guid" in name, "role assignment names must be deterministic guid()s"


def test_outputs_carry_no_secret(bicep):
    for path, parsed in bicep.items():
        for name, output in parsed.get("outputs", {}).items():
            text = json.dumps(output).lower()
            assert not any(word in text for word in ("key", "secret", "password", "connectionstring")), (
                path,
                name,
            )


def test_the_deploy_package_holds_exactly_the_deployable_files(tmp_path):
    output = tmp_path / "app.zip"
    result = subprocess.run(
        ["bash", str(INFRA / "deploy.sh"), "package", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names = set(zipfile.ZipFile(output).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "functions"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    expected = {"requirements.txt", "function_app.py", "host.json"} | {
        name for name in tracked.stdout.split() if name.endswith((".py", ".html", ".js", ".css", ".svg"))
    }
    assert names == expected
    assert not any(n.startswith(("local/", "tests/", "bench/", "infra/")) for n in names)
    assert not any("__pycache__" in n or n.endswith("local.settings.json") for n in names)


def test_the_parameters_file_names_only_parameters_both_templates_declare(bicep):
    given = set(json.loads((INFRA / "main.parameters.json").read_text())["parameters"])
    assert given <= set(bicep["main.bicep"]["parameters"])
    assert given <= set(bicep["subscription.bicep"]["parameters"])


def test_the_subscription_template_passes_every_parameter_of_main_through_with_the_same_rules(bicep):
    main = bicep["main.bicep"]["parameters"]
    outer = bicep["subscription.bicep"]["parameters"]
    passed = bicep["subscription.bicep"]["modules"]["app"]["config"]["params"]
    assert set(passed) == set(main)
    assert all(passed[name] == name for name in passed)
    for name, parameter in main.items():
        if name == "location":  # main's default is its group's location; the outer one is required
            continue
        assert outer[name]["type"] == parameter["type"], name
        assert outer[name].get("default") == parameter.get("default"), name
        rules = [d for d in parameter["decorators"] if d["type"] != "description"]
        assert [d for d in outer[name]["decorators"] if d["type"] != "description"] == rules, name


# What Flex Consumption does not take (learn.microsoft.com, "Flex Consumption plan deprecations"):
# some regions reject the deployment outright (ftpsState: ARM error 51021).
FLEX_UNSUPPORTED_SITE_CONFIG = {
    "ftpsState",
    "alwaysOn",
    "linuxFxVersion",
    "use32BitWorkerProcess",
    "netFrameworkVersion",
    "functionAppScaleLimit",
    "minimumElasticInstanceCount",
    "preWarmedInstanceCount",
}
FLEX_UNSUPPORTED_APP_SETTINGS = {
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_VNET_ROUTE_ALL",
}


def test_the_flex_app_sets_only_properties_flex_consumption_takes(bicep, app_settings):
    site = bicep["modules/functionapp.bicep"]["resources"]["functionApp"]["config"]["properties"]
    assert not FLEX_UNSUPPORTED_SITE_CONFIG & set(site["siteConfig"])
    assert not FLEX_UNSUPPORTED_APP_SETTINGS & set(app_settings)
    assert set(site["functionAppConfig"]) == {"deployment", "scaleAndConcurrency", "runtime"}


def test_storage_redundancy_is_a_parameter_whose_default_every_flex_region_offers(bicep):
    assert bicep["main.bicep"]["parameters"]["storageSku"]["default"] == "Standard_LRS"
    storage = bicep["modules/storage.bicep"]["resources"]["storage"]["config"]
    assert storage["sku"]["name"] == "sku"  # the parameter, not a fixed SKU


def test_a_rerun_merges_the_apps_settings_and_the_templates_own_win_a_clash(bicep):
    merged = bicep["modules/functionapp.bicep"]["resources"]["appSettings"]["config"]["properties"]
    assert merged["function"]["parameters"] == {"arg_1": "existingAppSettings", "arg_2": "ownSettings"}
    for template in ("main.bicep", "subscription.bicep", "modules/functionapp.bicep"):
        existing = bicep[template]["parameters"]["existingAppSettings"]
        assert {"type": "secure"} in existing["decorators"], template  # never in deployment history


def test_python_is_what_flex_runs_and_the_code_supports(bicep):
    for template in ("main.bicep", "subscription.bicep"):
        python = bicep[template]["parameters"]["pythonVersion"]
        [allowed] = [d["argument"] for d in python["decorators"] if d["type"] == "allowed"]
        assert allowed == ["3.11", "3.12", "3.13"], template
        assert python["default"] == "3.12"
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["pythonVersion"]["value"] == "3.12"


def test_always_ready_http_instances_are_a_parameter_that_defaults_to_none(bicep):
    for template in ("main.bicep", "subscription.bicep"):
        assert bicep[template]["parameters"]["alwaysReady"]["default"] == 0
    scale = bicep["modules/functionapp.bicep"]["resources"]["functionApp"]["config"]["properties"][
        "functionAppConfig"
    ]["scaleAndConcurrency"]
    conditional = scale["alwaysReady"]["operator"]
    assert conditional["type"] == "conditional"
    assert conditional["operands"]["true_value"] == [{"name": "http", "instanceCount": "alwaysReady"}]
    assert conditional["operands"]["false_value"] == []


def bicep_compiler() -> list[str] | None:
    if shutil.which("bicep"):
        return ["bicep"]
    if shutil.which("az"):
        found = subprocess.run(["az", "bicep", "version"], capture_output=True, text=True, check=False)
        if found.returncode == 0 and "Bicep CLI version" in found.stdout + found.stderr:
            return ["az", "bicep"]
    return None


def test_every_template_compiles_with_bicep(tmp_path):
    """The one check pycep and Checkov cannot make: Bicep's own compiler (types, BCP errors).
    Where no compiler can be installed (it downloads from GitHub), this says so in the summary."""
    compiler = bicep_compiler()
    if compiler is None:
        pytest.skip(
            "no Bicep compiler here (neither `bicep` nor `az bicep` can be installed: both download from "
            "GitHub): the templates were parsed by pycep and checked by Checkov only; deploy.sh compiles them"
        )
    for template in ("main.bicep", "subscription.bicep"):
        file = ["--file"] if compiler[0] == "az" else []  # `az bicep build --file F`, `bicep build F`
        result = subprocess.run(
            [*compiler, "build", *file, str(INFRA / template), "--outdir", str(tmp_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
