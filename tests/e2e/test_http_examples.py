"""examples/management-api.http runs, request by request, against the local stack as an IDE would."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from local.processes import ROOT

EXAMPLE = ROOT / "examples" / "management-api.http"
# What each request in the file answers, in order.
EXPECTED_STATUSES = [200, 201, 201, 200, 200, 201, 201, 204, 200, 200, 201, 200, 200, 401, 200, 200, 204]


def parse_http_file(text: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The REST Client format: `@name = value` variables, requests separated by `###`."""
    variables: dict[str, str] = {}
    requests = []
    for block in re.split(r"^###.*$", text, flags=re.MULTILINE):
        lines = [line for line in block.strip().splitlines() if not line.startswith("#") or "@name" in line]
        name = None
        for line in list(lines):
            if match := re.match(r"^@(\w+)\s*=\s*(.*)$", line):
                variables[match.group(1)] = match.group(2).strip()
                lines.remove(line)
            elif match := re.match(r"^#\s*@name\s+(\w+)", line):
                name = match.group(1)
                lines.remove(line)
        while lines and not lines[0].strip():
            lines.pop(0)
        if not lines:
            continue
        method, url = lines[0].split(" ", 1)
        headers, body_lines, in_body = {}, [], False
        for line in lines[1:]:
            if in_body:
                body_lines.append(line)
            elif not line.strip():
                in_body = True
            else:
                header, value = line.split(":", 1)
                headers[header.strip()] = value.strip()
        requests.append(
            {"name": name, "method": method, "url": url, "headers": headers, "body": "\n".join(body_lines)}
        )
    return variables, requests


def resolve(template: str, variables: dict[str, str], responses: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        reference = match.group(1)
        if ".response.body." in reference:
            name, path = reference.split(".response.body.", 1)
            found: Any = responses[name]
            for part in path.split("."):
                found = found[part]
            return str(found)
        return resolve(variables[reference], variables, responses)

    return re.sub(r"\{\{([^}]+)\}\}", value, template)


def test_the_http_examples_walk_the_management_api(stack):
    variables, requests = parse_http_file(EXAMPLE.read_text())
    variables |= {"functions": stack.functions_url, "emulator": stack.emulator_url}
    responses: dict[str, Any] = {}
    statuses = []
    with httpx.Client(timeout=30) as client:
        for request in requests:
            response = client.request(
                request["method"],
                resolve(request["url"], variables, responses),
                headers={k: resolve(v, variables, responses) for k, v in request["headers"].items()},
                content=resolve(request["body"], variables, responses).encode() or None,
            )
            statuses.append(response.status_code)
            if request["name"]:
                responses[request["name"]] = json.loads(response.text)
    assert statuses == EXPECTED_STATUSES
    assert Path(EXAMPLE).read_text().count("###") == len(EXPECTED_STATUSES)
