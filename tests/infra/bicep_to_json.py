"""Parse every .bicep file under a folder with pycep-parser and print {path: parsed} as JSON.

Runs in .venv-checkov (where Checkov's pinned pycep-parser lives); tests/infra reads its output.
"""

import json
import sys
from pathlib import Path

from pycep import BicepParser


def main(folder: str) -> None:
    parser = BicepParser()
    parsed = {
        str(path.relative_to(folder)): parser.parse(file_path=path)
        for path in sorted(Path(folder).rglob("*.bicep"))
    }
    json.dump(parsed, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1])
