#!/usr/bin/env bash
# Provision and deploy with the az CLI only.
#
#   infra/deploy.sh <resource-group> <location> [--parameters FILE] [--what-if]
#   infra/deploy.sh package <output.zip>      # build the app package only (what gets deployed)
#
# Deploys infra/main.bicep, packages requirements.txt, function_app.py, host.json and functions/
# (nothing from local/, tests/ or bench/), deploys the package with a remote build, and prints the
# notification URL and how to read the function key.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOYMENT_NAME="m365-webhooks"

usage() {
  sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
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
    p for p in Path("functions").rglob("*.py") if "__pycache__" not in p.parts
)
with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for path in files:
        archive.write(path, path.as_posix())
print(f"packaged {len(files)} files into {output}")
PY
  )
}

output_of() {
  az deployment group show --resource-group "$1" --name "$DEPLOYMENT_NAME" \
    --query "properties.outputs.$2.value" --output tsv
}

deploy() {
  local group="$1" location="$2" parameters="$3" what_if="$4"
  command -v az >/dev/null || { echo "the az CLI is required: https://aka.ms/azcli" >&2; exit 1; }

  if [[ "$(az group exists --name "$group")" != "true" ]]; then
    if [[ "$what_if" == "yes" ]]; then
      echo "resource group $group does not exist yet: what-if needs it; create it first" >&2
      exit 1
    fi
    echo "creating resource group $group in $location"
    az group create --name "$group" --location "$location" --output none
  fi

  if [[ "$what_if" == "yes" ]]; then
    az deployment group what-if --resource-group "$group" --name "$DEPLOYMENT_NAME" \
      --template-file "$ROOT/infra/main.bicep" --parameters "@$parameters" \
      --parameters location="$location"
    return
  fi

  echo "deploying infra/main.bicep to $group"
  az deployment group create --resource-group "$group" --name "$DEPLOYMENT_NAME" \
    --template-file "$ROOT/infra/main.bicep" --parameters "@$parameters" \
    --parameters location="$location" --output none

  local app principal notification_url
  app="$(output_of "$group" functionAppName)"
  principal="$(output_of "$group" identityPrincipalId)"
  notification_url="$(output_of "$group" notificationUrl)"

  local zip
  zip="$(mktemp -d)/app.zip"
  package "$zip"
  echo "deploying the app package to $app (remote build)"
  az functionapp deployment source config-zip --resource-group "$group" --name "$app" \
    --src "$zip" --build-remote true --output none

  cat <<EOF

Deployed.
  Function app:      $app
  Notification URL:  $notification_url
  Identity:          principal id $principal (grant it Sites.Selected + site Manage: see README)
  Function key:      az functionapp keys list -g $group -n $app --query functionKeys.default -o tsv
EOF
}

main() {
  [[ $# -ge 1 ]] || usage
  if [[ "$1" == "package" ]]; then
    [[ $# -eq 2 ]] || usage
    package "$2"
    return
  fi
  [[ $# -ge 2 ]] || usage
  local group="$1" location="$2" parameters="$ROOT/infra/main.parameters.json" what_if="no"
  shift 2
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --what-if) what_if="yes"; shift ;;
      --parameters) parameters="$2"; shift 2 ;;
      *) usage ;;
    esac
  done
  deploy "$group" "$location" "$parameters" "$what_if"
}

main "$@"
