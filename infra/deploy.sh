#!/usr/bin/env bash
# Provision and deploy with the az CLI (and its Bicep) only.
#
#   infra/deploy.sh <resource-group> <location> [--parameters FILE] [--what-if]
#   infra/deploy.sh smoke <resource-group>      check that a deployed app answers (after any deploy)
#   infra/deploy.sh package <output.zip>        build the app package only (what gets deployed)
#
# Checks the login and Bicep first; deploys infra/subscription.bicep (the resource group, then
# infra/main.bicep inside it), so --what-if previews a fresh subscription and creates nothing.
# Creates the key ring that seals sink secrets in the app's Key Vault once (never replaced).
# Then packages requirements.txt, function_app.py, host.json and functions/, deploys the package
# (retrying while new role assignments propagate), and ends with the smoke check.
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

# Subscription-scope deployments share one namespace per subscription: one name per group.
deployment_name() {
  local name="m365-webhooks-$1"
  echo "${name:0:64}"
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
    if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".html", ".js", ".css")
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
  az deployment sub show --name "$(deployment_name "$1")" \
    --query "properties.outputs.$2.value" --output tsv
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

# Flex Consumption writes the package with the app's managed identity; right after the role
# assignments are created, storage can still refuse it (403) for a few minutes.
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
    if ! grep -qiE '403|forbidden|AuthorizationFailure|AuthorizationPermissionMismatch' "$errors"; then
      cat "$errors" >&2
      fail "the package deploy failed (not a permission error, so not retried)"
    fi
    if ((SECONDS + ${delay%.*} >= deadline)); then
      cat "$errors" >&2
      fail "the package deploy was still refused (403) after ${PACKAGE_DEPLOY_TIMEOUT}s: check the roles in infra/modules/roles.bicep"
    fi
    echo "the package upload was refused (403): the identity's new storage roles can take minutes to" \
      "propagate; retrying in ${delay}s" >&2
    sleep "$delay"
    delay=$(awk -v d="$delay" 'BEGIN { d *= 2; print (d > 60 ? 60 : d) }')
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
  local group="$1" location="$2" parameters="$3" what_if="$4"
  require_az
  require_bicep
  local name deployer
  name="$(deployment_name "$group")"
  read -r -a deployer <<<"$(deployer_principal)"
  local template=(--name "$name" --location "$location"
    --template-file "$ROOT/infra/subscription.bicep" --parameters "@$parameters"
    --parameters resourceGroupName="$group" location="$location"
    deployerPrincipalId="${deployer[0]}" deployerPrincipalType="${deployer[1]}")

  if [[ "$what_if" == "yes" ]]; then
    echo "previewing the deployment of $group in $location (nothing is created)"
    az deployment sub what-if "${template[@]}"
    return
  fi

  echo "deploying infra/subscription.bicep: resource group $group in $location, then infra/main.bicep"
  az deployment sub create "${template[@]}" --output none

  local app url principal notification_url zip
  app="$(output_of "$group" functionAppName)"
  url="$(output_of "$group" functionAppUrl)"
  principal="$(output_of "$group" identityPrincipalId)"
  notification_url="$(output_of "$group" notificationUrl)"
  ensure_sealing_keys "$(output_of "$group" vaultName)"
  zip="$(mktemp -d)/app.zip"
  package "$zip"
  deploy_package "$group" "$app" "$zip"
  smoke_check "$url" "$notification_url"

  cat <<EOF

Deployed.
  Function app:      $app
  Notification URL:  $notification_url
  Identity:          principal id $principal (grant it Sites.Selected + site Manage: see README)
  Function key:      az functionapp keys list -g $group -n $app --query functionKeys.default -o tsv
  Smoke check again: infra/deploy.sh smoke $group
EOF
}

smoke() {
  local group="$1"
  require_az
  smoke_check "$(output_of "$group" functionAppUrl)" "$(output_of "$group" notificationUrl)"
}

main() {
  [[ $# -ge 1 ]] || usage
  case "$1" in
    package)
      [[ $# -eq 2 ]] || usage
      package "$2"
      return
      ;;
    smoke)
      [[ $# -eq 2 ]] || usage
      smoke "$2"
      return
      ;;
    -h | --help) usage ;;
  esac
  [[ $# -ge 2 ]] || usage
  local group="$1" location="$2" parameters="$ROOT/infra/main.parameters.json" what_if="no"
  shift 2
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --what-if) what_if="yes"; shift ;;
      --parameters) [[ $# -ge 2 ]] || usage; parameters="$2"; shift 2 ;;
      *) usage ;;
    esac
  done
  deploy "$group" "$location" "$parameters" "$what_if"
}

main "$@"
