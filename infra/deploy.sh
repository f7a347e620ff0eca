#!/usr/bin/env bash
# Provision and deploy with the az CLI (and its Bicep) only.
#
#   infra/deploy.sh <resource-group> <location> [--parameters FILE] [--what-if]
#       creates the group (or updates it) and deploys into it, at subscription scope: needs
#       Contributor and User Access Administrator (or Owner) on the subscription
#   infra/deploy.sh into <resource-group> [--parameters FILE] [--what-if]
#       deploys into a group that exists, in the group's region: needs Contributor and User Access
#       Administrator (or Role Based Access Control Administrator) on that group only
#   infra/deploy.sh smoke <resource-group>      check that a deployed app answers (after any deploy)
#   infra/deploy.sh package <output.zip>        build the app package only (what gets deployed)
#
# Checks its tools, the login, Bicep, the parameters, the region and (into a group) the resource
# providers before it changes anything; --what-if previews and creates nothing. Keeps the app
# settings added by hand on a rerun. Creates the key ring that seals sink secrets in the app's Key
# Vault once (never replaced). With tenancy multi, registers the multi-tenant app (or prints the
# commands for someone allowed to) and trusts the app identity as its federated credential. Then packages requirements.txt, function_app.py, host.json and
# functions/, deploys the package (retrying while the app identity's new roles propagate), ends
# with the smoke check and prints every URL and the next steps.
#
# Tunables (seconds): PACKAGE_DEPLOY_TIMEOUT=600 PACKAGE_RETRY_DELAY=15 SMOKE_TIMEOUT=300
# SMOKE_INTERVAL=10.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGE_DEPLOY_TIMEOUT="${PACKAGE_DEPLOY_TIMEOUT:-600}"
PACKAGE_RETRY_DELAY="${PACKAGE_RETRY_DELAY:-15}"
SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-300}"
SMOKE_INTERVAL="${SMOKE_INTERVAL:-10}"

usage() {
  # The comment block at the top of this file, without the shebang or any code.
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}" >&2
  exit 2
}

fail() {
  echo "deploy.sh: $*" >&2
  exit 1
}

# Subscription-scope deployments share one namespace per subscription: one name per group. Inside
# the group, main.bicep's deployment is always "m365-webhooks" (subscription.bicep names its module
# so), whichever way it was deployed: that is where the outputs are read.
subscription_deployment_name() {
  local name="m365-webhooks-$1"
  echo "${name:0:64}"
}
GROUP_DEPLOYMENT="m365-webhooks"
REQUIRED_PROVIDERS=(Microsoft.Web Microsoft.Storage Microsoft.KeyVault Microsoft.Insights
  Microsoft.OperationalInsights Microsoft.ManagedIdentity)

# curl (the smoke check) and python3 (the package, the parameter checks): known before any change.
require_tools() {
  local tool missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || fail "${missing[*]} not found: install it first (a deploy needs curl and python3)"
}

# The app package: exactly the files the Functions host needs; Azure installs requirements.txt.
package() {
  local output="$1"
  rm -f "$output"
  (cd "$ROOT" && python3 - "$output" <<'PY'
import sys
import zipfile
from pathlib import Path

output = Path(sys.argv[1]).resolve()
files = [Path("requirements.txt"), Path("function_app.py"), Path("host.json")]
files += sorted(
    p for p in Path("functions").rglob("*")
    if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".html", ".js", ".css", ".svg")
)
with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for path in files:
        archive.write(path, path.as_posix())
print(f"packaged {len(files)} files into {output}")
PY
  )
}

require_az() {
  command -v az >/dev/null || fail "the az CLI is required: https://aka.ms/azcli"
  # First call to Azure: everything else needs a login, so say so before anything else happens.
  az account show --output none 2>/dev/null \
    || fail "not logged in to Azure: run 'az login' (and 'az account set --subscription <id>' to choose one)"
}

require_bicep() {
  # az downloads Bicep on first use, which fails where that download cannot be made.
  local version
  if ! version="$(az bicep version --only-show-errors 2>&1)" || [[ "$version" != *"Bicep CLI version"* ]]; then
    fail "the Bicep CLI is missing: run 'az bicep install' (or 'az bicep upgrade'), then try again"
  fi
}

output_of() {
  az deployment group show --resource-group "$1" --name "$GROUP_DEPLOYMENT" \
    --query "properties.outputs.$2.value" --output tsv
}

# A parameter's value in the parameters file ("" when the file does not set it).
parameter() {
  python3 -c '
import json, sys
print(json.load(open(sys.argv[1])).get("parameters", {}).get(sys.argv[2], {}).get("value", ""))
' "$1" "$2"
}

check_parameters() {
  local file="$1" tenant
  [[ -f "$file" ]] || fail "no parameters file at $file"
  python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$file" 2>/dev/null || fail "$file is not valid JSON"
  tenant="$(parameter "$file" sharePointTenantUrl)"
  if [[ -z "$tenant" || "$tenant" == *"://contoso.sharepoint.com"* ]]; then
    fail "sharePointTenantUrl in $file is '${tenant:-unset}', a placeholder: set it to your tenant's (https://<name>.sharepoint.com)"
  fi
  [[ "$tenant" =~ ^https://[A-Za-z0-9-]+\.sharepoint\.(com|us|de|cn)/?$ ]] \
    || fail "sharePointTenantUrl in $file is '$tenant': expected https://<name>.sharepoint.com"
}

# "westus" and "West US" name one region.
same_region() {
  local a b
  a="$(tr -d ' ' <<<"$1" | tr '[:upper:]' '[:lower:]')"
  b="$(tr -d ' ' <<<"$2" | tr '[:upper:]' '[:lower:]')"
  [[ "$a" == "$b" ]]
}

# This deployment's function app in the group, as "name location", if there is one.
existing_app() {
  local group="$1" prefix="$2"
  az functionapp list --resource-group "$group" \
    --query "[?starts_with(name, 'func-$prefix-')] | [0].[name, location]" --output tsv 2>/dev/null || true
}

# Azure does not move a group or its resources when they are deployed again elsewhere: say so now,
# rather than after a deployment that fails half-way.
check_region() {
  local group="$1" location="$2" prefix="$3" found name where
  if [[ "$(az group exists --name "$group")" == "true" ]]; then
    found="$(az group show --name "$group" --query location --output tsv)"
    same_region "$found" "$location" \
      || fail "resource group $group is in $found, not $location: a deploy cannot move it; use $found, or another group"
  fi
  read -r name where <<<"$(existing_app "$group" "$prefix")"
  if [[ -n "${name:-}" ]] && ! same_region "$where" "$location"; then
    fail "the function app $name is in $where, not $location: a deploy cannot move it; use $where, or another group"
  fi
}

# Registering a resource provider needs rights on the subscription, which a group's owner lacks:
# find out before the deployment fails half-way with MissingSubscriptionRegistration.
check_providers() {
  local namespace state missing=()
  for namespace in "${REQUIRED_PROVIDERS[@]}"; do
    state="$(az provider show --namespace "$namespace" --query registrationState --output tsv 2>/dev/null || true)"
    [[ "$state" == "Registered" ]] || missing+=("$namespace")
  done
  ((${#missing[@]} == 0)) && return
  {
    echo "deploy.sh: resource providers not registered in this subscription: ${missing[*]}"
    echo "Registering one needs rights on the subscription; ask its owner to run:"
    for namespace in "${missing[@]}"; do
      echo "  az provider register --namespace $namespace"
    done
  } >&2
  exit 1
}

# The settings already on the app (added by hand, or by another tool), so that the template merges
# them with its own rather than replacing them. Written to a private parameters file, never on a
# command line, for a @secure() parameter, so no value lands in the deployment history.
existing_settings_file() {
  local group="$1" app="$2" file
  file="$(umask 077 && mktemp)"
  if [[ -z "$app" ]]; then
    echo '{"parameters": {"existingAppSettings": {"value": {}}}}' >"$file"
  elif ! az functionapp config appsettings list --resource-group "$group" --name "$app" --output json \
    | python3 -c '
import json, sys
settings = {entry["name"]: entry["value"] for entry in json.load(sys.stdin) if entry.get("value") is not None}
print(json.dumps({"parameters": {"existingAppSettings": {"value": settings}}}))
' >"$file"; then
    rm -f "$file"
    fail "could not read the app settings of $app, which a rerun must keep"
  fi
  echo "$file"
}

# Who runs this: granted Key Vault Secrets Officer on the app's vault so the key ring can be made.
# A person signed in with `az login`, or the service principal of a pipeline.
deployer_principal() {
  local id
  if id="$(az ad signed-in-user show --query id --output tsv 2>/dev/null)" && [[ -n "$id" ]]; then
    echo "$id User"
    return
  fi
  local app_id
  app_id="$(az account show --query user.name --output tsv)"
  id="$(az ad sp show --id "$app_id" --query id --output tsv 2>/dev/null)" \
    || fail "cannot find the object id of the signed-in identity ($app_id) in Entra ID"
  echo "$id ServicePrincipal"
}

# The key ring that seals sink secrets, made once: a later deploy never replaces it (that would
# leave every sealed secret unreadable). Written from a private file, never on a command line.
ensure_sealing_keys() {
  local vault="$1" deadline=$((SECONDS + PACKAGE_DEPLOY_TIMEOUT)) errors
  if az keyvault secret show --vault-name "$vault" --name sink-sealing-keys --query id --output none 2>/dev/null; then
    echo "sink sealing key ring: kept as it is in $vault"
    return
  fi
  local file
  file="$(umask 077 && mktemp)"
  python3 -c 'import base64, secrets; print("k1=" + base64.b64encode(secrets.token_bytes(32)).decode(), end="")' >"$file"
  errors="$(mktemp)"
  # A role assignment made moments ago can take minutes to reach Key Vault.
  until az keyvault secret set --vault-name "$vault" --name sink-sealing-keys --file "$file" \
    --content-type "SINK_SEALING_KEYS key ring" --output none 2>"$errors"; do
    if ! grep -qiE 'forbidden|403' "$errors" || ((SECONDS >= deadline)); then
      rm -f "$file"
      cat "$errors" >&2
      fail "could not create the sink sealing key ring in $vault"
    fi
    echo "Key Vault refused the key ring (403) while the new role propagates; retrying in ${PACKAGE_RETRY_DELAY}s" >&2
    sleep "$PACKAGE_RETRY_DELAY"
  done
  rm -f "$file"
  echo "sink sealing key ring: created in $vault"
}

# The certificate Teams' rich notifications are encrypted to (docs/teams.md), made once: replacing
# it would leave every Teams subscription encrypting to a key the app no longer has. Self-signed,
# RSA 2048, exportable (its backing secret is what the app reads through TEAMS_CERTIFICATE).
ensure_teams_certificate() {
  local vault="$1" deadline=$((SECONDS + PACKAGE_DEPLOY_TIMEOUT)) errors policy
  if az keyvault certificate show --vault-name "$vault" --name teams-notifications --query id --output none 2>/dev/null; then
    echo "teams certificate: kept as it is in $vault"
    return
  fi
  policy="$(mktemp)"
  cat >"$policy" <<'POLICY'
{"issuerParameters": {"name": "Self"},
 "keyProperties": {"exportable": true, "keyType": "RSA", "keySize": 2048, "reuseKey": false},
 "secretProperties": {"contentType": "application/x-pkcs12"},
 "x509CertificateProperties": {"subject": "CN=m365-webhooks-teams-notifications", "validityInMonths": 12},
 "lifetimeActions": [{"trigger": {"daysBeforeExpiry": 30}, "action": {"actionType": "AutoRenew"}}]}
POLICY
  errors="$(mktemp)"
  until az keyvault certificate create --vault-name "$vault" --name teams-notifications --policy "@$policy" \
    --output none 2>"$errors"; do
    if ! grep -qiE 'forbidden|403' "$errors" || ((SECONDS >= deadline)); then
      rm -f "$policy"
      cat "$errors" >&2
      fail "could not create the Teams certificate in $vault"
    fi
    echo "Key Vault refused the certificate (403) while the new role propagates; retrying in ${PACKAGE_RETRY_DELAY}s" >&2
    sleep "$PACKAGE_RETRY_DELAY"
  done
  rm -f "$policy"
  echo "teams certificate: created in $vault"
}

# Many tenants (docs/tenants.md): one multi-tenant app registration, whose credential is the app's
# managed identity as a federated identity credential (no secret anywhere). The application
# permissions a guest's administrator consents to, resolved by name from each API's service
# principal at deploy time.
GRAPH_API="00000003-0000-0000-c000-000000000000"
SHAREPOINT_API="00000003-0000-0ff1-ce00-000000000000"
GRAPH_ROLES=(Sites.Manage.All Files.Read.All Mail.Read Calendars.Read ChannelMessage.Read.All Chat.Read.All)
SHAREPOINT_ROLES=(Sites.Manage.All)
FEDERATED_CREDENTIAL="function-app"

# What someone with Entra's Application Developer role (or Cloud Application Administrator) runs
# when the deployer may not register applications itself.
multitenant_app_commands() {
  local name="$1" role
  echo "  APP=\$(az ad app create --display-name $name --sign-in-audience AzureADMultipleOrgs --query appId -o tsv)"
  for role in "${GRAPH_ROLES[@]}"; do
    echo "  az ad app permission add --id \$APP --api $GRAPH_API --api-permissions \$(az ad sp show --id $GRAPH_API --query \"appRoles[?value=='$role'].id | [0]\" -o tsv)=Role"
  done
  for role in "${SHAREPOINT_ROLES[@]}"; do
    echo "  az ad app permission add --id \$APP --api $SHAREPOINT_API --api-permissions \$(az ad sp show --id $SHAREPOINT_API --query \"appRoles[?value=='$role'].id | [0]\" -o tsv)=Role"
  done
  echo "  echo \$APP   # put it in the parameters file as multiTenantAppId, then run deploy.sh again"
}

# The multi-tenant app's id: the parameters file's multiTenantAppId, else the app of that name
# (made once), else a new one with its permissions.
ensure_multitenant_app() {
  local given="$1" name="$2-multitenant" id errors api role role_id
  if [[ -n "$given" ]]; then
    echo "$given"
    return
  fi
  id="$(az ad app list --display-name "$name" --query '[0].appId' --output tsv 2>/dev/null)" || id=""
  if [[ -n "$id" ]]; then
    echo "multi-tenant app: $name ($id) kept as it is" >&2
    echo "$id"
    return
  fi
  errors="$(mktemp)"
  if ! id="$(az ad app create --display-name "$name" --sign-in-audience AzureADMultipleOrgs \
    --query appId --output tsv 2>"$errors")" || [[ -z "$id" ]]; then
    cat "$errors" >&2
    {
      echo "Registering the multi-tenant app needs Entra's Application Developer role (or users allowed"
      echo "to register applications). Someone who has it runs:"
      multitenant_app_commands "$name"
    } >&2
    fail "the multi-tenant app could not be registered by this account (the commands are above)"
  fi
  for api in "$GRAPH_API" "$SHAREPOINT_API"; do
    local roles=("${GRAPH_ROLES[@]}")
    [[ "$api" == "$SHAREPOINT_API" ]] && roles=("${SHAREPOINT_ROLES[@]}")
    for role in "${roles[@]}"; do
      role_id="$(az ad sp show --id "$api" --query "appRoles[?value=='$role'].id | [0]" --output tsv)"
      az ad app permission add --id "$id" --api "$api" --api-permissions "$role_id=Role" --output none
    done
  done
  echo "multi-tenant app: $name ($id) registered" >&2
  echo "$id"
}

# After the deployment: the consent redirect URI, and the app identity as the app's federated
# credential (issuer: this tenant's v2.0 authority; subject: the identity's object id).
trust_app_identity() {
  local app="$1" principal="$2" base="$3" tenant file
  tenant="$(az account show --query tenantId --output tsv)"
  az ad app update --id "$app" --web-redirect-uris "$base/api/consent" --output none \
    || fail "could not set the consent redirect URI $base/api/consent on app $app (its owners can)"
  if [[ -n "$(az ad app federated-credential list --id "$app" \
    --query "[?name=='$FEDERATED_CREDENTIAL'].name | [0]" --output tsv)" ]]; then
    echo "federated credential: kept as it is on $app"
    return
  fi
  file="$(mktemp)"
  cat >"$file" <<CREDENTIAL
{"name": "$FEDERATED_CREDENTIAL",
 "issuer": "https://login.microsoftonline.com/$tenant/v2.0",
 "subject": "$principal",
 "audiences": ["api://AzureADTokenExchange"],
 "description": "The m365-webhooks function app's managed identity"}
CREDENTIAL
  az ad app federated-credential create --id "$app" --parameters "@$file" --output none \
    || { rm -f "$file"; fail "could not add the app identity as a federated credential of app $app (its owners can)"; }
  rm -f "$file"
  echo "federated credential: the app identity ($principal) trusted by $app"
}

# Flex Consumption writes the package with the app's managed identity; right after its role
# assignments are created, storage can still refuse it (403) for a few minutes. Only that 403 is
# retried: the deployer's own missing rights (ARM's AuthorizationFailed) would never pass. After the
# upload, az probes the app's health itself and can fail though the package is in place: the smoke
# check that follows decides.
deploy_package() {
  local group="$1" app="$2" zip="$3"
  local deadline=$((SECONDS + PACKAGE_DEPLOY_TIMEOUT)) delay="$PACKAGE_RETRY_DELAY" errors
  errors="$(mktemp)"
  while true; do
    echo "deploying the app package to $app (remote build)"
    if az functionapp deployment source config-zip --resource-group "$group" --name "$app" \
      --src "$zip" --build-remote true --output none 2>"$errors"; then
      return 0
    fi
    if grep -qiE 'AuthorizationFailed|does not have authorization to perform action' "$errors"; then
      cat "$errors" >&2
      fail "your own account may not deploy to $app (AuthorizationFailed: a 403 on you, not on the app's identity); it needs Contributor on $group, so this is not retried"
    fi
    if grep -qiE 'AuthorizationPermissionMismatch|not authorized to perform this operation using this permission' "$errors"; then
      if ((SECONDS + ${delay%.*} >= deadline)); then
        cat "$errors" >&2
        fail "the app identity's package upload was still refused (403) after ${PACKAGE_DEPLOY_TIMEOUT}s: check its Storage Blob Data Owner role (infra/modules/roles.bicep)"
      fi
      echo "the package upload was refused (403) for the app's identity: its new storage roles can take" \
        "minutes to propagate; retrying in ${delay}s" >&2
      sleep "$delay"
      delay=$(awk -v d="$delay" 'BEGIN { d *= 2; print (d > 60 ? 60 : d) }')
      continue
    fi
    if grep -qiE 'unhealthy|health check|health of the' "$errors"; then
      echo "az could not confirm the app's health after the upload: $(head -c 300 "$errors" | tr '\n' ' ')" >&2
      echo "the package is in place; the smoke check decides" >&2
      return 0
    fi
    cat "$errors" >&2
    fail "the package deploy failed (not the app identity's 403, so not retried)"
  done
}

# The app answers its health check, and the notification URL echoes a validation token exactly as
# SharePoint and Graph require: 200, text/plain, the token itself.
smoke_check() {
  local base="$1" notification_url="$2"
  local deadline=$((SECONDS + SMOKE_TIMEOUT)) status="none"
  echo "smoke check: waiting for $base/api/health to answer 200 (up to ${SMOKE_TIMEOUT}s)"
  while true; do
    status="$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 10 "$base/api/health" || true)"
    [[ "$status" == "200" ]] && break
    if ((SECONDS >= deadline)); then
      echo "smoke check FAILED: $base/api/health never answered 200 (last answer: ${status:-none})" >&2
      return 1
    fi
    sleep "$SMOKE_INTERVAL"
  done
  echo "  health: 200"

  local token="smoke-$RANDOM$RANDOM" headers body content_type
  headers="$(mktemp)"
  body="$(curl --silent --max-time 10 --request POST --dump-header "$headers" \
    --write-out '\n%{http_code}' "$notification_url?validationtoken=$token" || true)"
  status="${body##*$'\n'}"
  body="${body%$'\n'*}"
  content_type="$(grep -i '^content-type:' "$headers" | tr -d '\r' | cut -d' ' -f2- || true)"
  if [[ "$status" != "200" || "$content_type" != text/plain* || "$body" != "$token" ]]; then
    echo "smoke check FAILED: the validation echo answered $status, '$content_type', '$body'" \
      "(expected 200, text/plain, '$token')" >&2
    return 1
  fi
  echo "  validation echo: 200, $content_type, token echoed"
  echo "smoke check passed"
}

deploy() {
  local mode="$1" group="$2" location="$3" parameters="$4" what_if="$5"
  require_tools curl python3
  require_az
  require_bicep
  check_parameters "$parameters"
  local prefix
  prefix="$(parameter "$parameters" namePrefix)"
  prefix="${prefix:-m365hooks}"
  if [[ "$mode" == "into" ]]; then
    [[ "$(az group exists --name "$group")" == "true" ]] \
      || fail "resource group $group does not exist, or this account cannot see it: have it created, or give a location to create it (needs rights on the subscription)"
    location="$(az group show --name "$group" --query location --output tsv)"
    local wanted
    wanted="$(parameter "$parameters" location)"
    if [[ -n "$wanted" ]] && ! same_region "$wanted" "$location"; then
      fail "$parameters sets location $wanted, but $group is in $location: a deploy into a group uses its region"
    fi
    check_providers
  fi
  check_region "$group" "$location" "$prefix"

  local deployer app where settings tenancy multitenant_app=""
  read -r -a deployer <<<"$(deployer_principal)"
  read -r app where <<<"$(existing_app "$group" "$prefix")"
  tenancy="$(parameter "$parameters" tenancy)"
  if [[ "$tenancy" == "multi" && "$what_if" != "yes" ]]; then
    multitenant_app="$(ensure_multitenant_app "$(parameter "$parameters" multiTenantAppId)" "$prefix")"
  fi
  settings="$(existing_settings_file "$group" "${app:-}")"
  local parameters_args=(--parameters "@$parameters" --parameters "@$settings"
    --parameters deployerPrincipalId="${deployer[0]}" deployerPrincipalType="${deployer[1]}")
  if [[ -n "$multitenant_app" ]]; then
    parameters_args+=(--parameters multiTenantAppId="$multitenant_app")
  fi
  local scope target
  if [[ "$mode" == "into" ]]; then
    scope=group
    target=(--resource-group "$group" --name "$GROUP_DEPLOYMENT" --template-file "$ROOT/infra/main.bicep")
  else
    scope=sub
    target=(--name "$(subscription_deployment_name "$group")" --location "$location"
      --template-file "$ROOT/infra/subscription.bicep" --parameters resourceGroupName="$group" location="$location")
  fi

  if [[ "$what_if" == "yes" ]]; then
    echo "previewing the deployment of $group in $location (nothing is created)"
    az deployment "$scope" what-if "${target[@]}" "${parameters_args[@]}"
    rm -f "$settings"
    return
  fi
  if [[ "$mode" == "into" ]]; then
    echo "deploying infra/main.bicep into the existing group $group ($location)"
  else
    echo "deploying infra/subscription.bicep: resource group $group in $location, then infra/main.bicep"
  fi
  az deployment "$scope" create "${target[@]}" "${parameters_args[@]}" --output none || {
    rm -f "$settings"
    fail "the deployment of $group failed (az said why, above)"
  }
  rm -f "$settings"

  local url principal client notification_url zip
  app="$(output_of "$group" functionAppName)"
  url="$(output_of "$group" functionAppUrl)"
  principal="$(output_of "$group" identityPrincipalId)"
  client="$(output_of "$group" identityClientId)"
  notification_url="$(output_of "$group" notificationUrl)"
  ensure_sealing_keys "$(output_of "$group" vaultName)"
  ensure_teams_certificate "$(output_of "$group" vaultName)"
  if [[ -n "$multitenant_app" ]]; then
    trust_app_identity "$multitenant_app" "$principal" "${notification_url%/api/notifications/sharepoint}"
  fi
  zip="$(mktemp -d)/app.zip"
  package "$zip"
  deploy_package "$group" "$app" "$zip"
  smoke_check "$url" "$notification_url"
  summary "$group" "$app" "$url" "$notification_url" "$principal" "$client"
}

# Everything a user needs next, in the order they need it.
summary() {
  local group="$1" app="$2" url="$3" notification_url="$4" principal="$5" client="$6"
  local base="${notification_url%/api/notifications/sharepoint}"
  cat <<SUMMARY

Deployed $app into $group.

  Management API:    $url/api   (subscriptions, changes, sinks, poison: function key required)
  Console:           $url/api/console/
  Health:            $url/api/health
  Notification URLs, which Microsoft 365 calls (no key):
    SharePoint:      $base/api/notifications/sharepoint
    Graph:           $base/api/notifications/graph
    Graph lifecycle: $base/api/notifications/graph/lifecycle
  Function key:      az functionapp keys list -g $group -n $app --query functionKeys.default -o tsv
  App identity:      principal id $principal, client id $client

Next:
  1. Grant the app identity its Microsoft 365 permissions before the first subscription (its
     tokens are cached for about 24 hours: a call made before the grant keeps failing that long).
     Granting needs Privileged Role Administrator or Global Administrator in Entra ID, and the
     Azure subscription must be in the Microsoft 365 tenant (docs/deploy.md, "Grant the identity").
  2. Subscribe a list:
     KEY=\$(az functionapp keys list -g $group -n $app --query functionKeys.default -o tsv)
     curl -X POST "$url/api/subscriptions" -H "x-functions-key: \$KEY" \\
       -H "Content-Type: application/json" -d '{"siteUrl": "/sites/<site>", "listId": "<list guid>"}'
  Smoke check again: infra/deploy.sh smoke $group
SUMMARY
}

smoke() {
  local group="$1"
  require_tools curl
  require_az
  [[ "$(az group exists --name "$group")" == "true" ]] \
    || fail "resource group $group does not exist, or this account cannot see it (is 'az account show' the right subscription?)"
  local url="" notification_url=""
  url="$(output_of "$group" functionAppUrl 2>/dev/null)" || true
  notification_url="$(output_of "$group" notificationUrl 2>/dev/null)" || true
  [[ -n "$url" && -n "$notification_url" ]] \
    || fail "$group holds no deployment of this app (no '$GROUP_DEPLOYMENT' deployment with its URLs): deploy first"
  smoke_check "$url" "$notification_url"
}

main() {
  [[ $# -ge 1 ]] || usage
  local mode="subscription" group location=""
  case "$1" in
    package)
      [[ $# -eq 2 ]] || usage
      require_tools python3
      package "$2"
      return
      ;;
    smoke)
      [[ $# -eq 2 ]] || usage
      smoke "$2"
      return
      ;;
    into)
      [[ $# -ge 2 ]] || usage
      mode="into"
      group="$2"
      shift 2
      ;;
    -*) usage ;;
    *)
      [[ $# -ge 2 && "$2" != -* ]] || usage
      group="$1"
      location="$2"
      shift 2
      ;;
  esac
  local parameters="$ROOT/infra/main.parameters.json" what_if="no"
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --what-if) what_if="yes"; shift ;;
      --parameters) [[ $# -ge 2 ]] || usage; parameters="$2"; shift 2 ;;
      *) usage ;;
    esac
  done
  deploy "$mode" "$group" "$location" "$parameters" "$what_if"
}

main "$@"
