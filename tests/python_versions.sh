#!/usr/bin/env bash
# The unit tests and a cold import of function_app.py on every Python version the deploy allows
# (pythonVersion's @allowed list in infra/main.bicep), each in a virtual environment of its own
# (.venv-py3.X). A version this machine has no interpreter for is named, not passed over quietly.
set -euo pipefail
cd "$(dirname "$0")/.."

allowed="$(python3 - <<'PY'
import re
text = open("infra/main.bicep").read()
block = re.search(r"@allowed\(\[([^\]]*)\]\)\s*param pythonVersion", text).group(1)
print(" ".join(re.findall(r"'([0-9.]+)'", block)))
PY
)"

interpreter() {
  local version="$1" candidate
  for candidate in "python$version" $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/python 2>/dev/null | sort -V -r); do
    if command -v "$candidate" >/dev/null && "$candidate" -c "import sys; assert sys.version.startswith('$version.')" 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
}

tested=() missing=() failed=()
for version in $allowed; do
  python="$(interpreter "$version")"
  if [[ -z "$python" ]]; then
    missing+=("$version")
    continue
  fi
  venv=".venv-py$version"
  echo "== Python $version ($python)"
  if [[ ! -f "$venv/.installed" || requirements-unit.txt -nt "$venv/.installed" || requirements.txt -nt "$venv/.installed" ]]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r requirements-unit.txt
    touch "$venv/.installed"
  fi
  # What the host does on a cold instance: import the app and index its functions.
  if "$venv/bin/python" -c '
import function_app
functions = function_app.app.get_functions()
assert functions, "function_app.py registered no function"
print(f"cold import: {len(functions)} functions")
' && "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit; then
    tested+=("$version")
  else
    failed+=("$version")
  fi
done

echo "Python versions the deploy allows: $allowed"
echo "  passed (unit tests and cold import): ${tested[*]:-none}"
((${#missing[@]} == 0)) || echo "  NOT TESTED, no interpreter on this machine: ${missing[*]}"
((${#failed[@]} == 0)) || { echo "  FAILED: ${failed[*]}"; exit 1; }
