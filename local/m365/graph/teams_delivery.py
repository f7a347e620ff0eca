"""What a POST of rich notifications carries beyond its entries: `validationTokens`, one per app
and tenant present, and the faults a test asked for (a flipped byte of `data`, a wrong audience, an
expired token, no tokens, an unknown certificate id, an entry of a second tenant spliced in)."""

from __future__ import annotations

import base64
import copy
import time
import uuid
from typing import Any

from .state import GraphTenant


def envelope(graph: GraphTenant, entries: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"value": [copy.deepcopy(entry) for entry in entries]}
    rich = [entry for entry in body["value"] if "encryptedContent" in entry]
    if not rich:
        return body
    faults = graph.teams.faults
    fault = next((name for name in list(faults) if faults[name] > 0), None)
    if fault is not None:
        faults[fault] -= 1
    if fault == "flipData":
        data = bytearray(base64.b64decode(rich[0]["encryptedContent"]["data"]))
        data[len(data) // 2] ^= 0x01
        rich[0]["encryptedContent"]["data"] = base64.b64encode(bytes(data)).decode("ascii")
    if fault == "unknownCertificate":
        rich[0]["encryptedContent"]["encryptionCertificateId"] = "not-a-certificate-of-this-app"
    if fault == "twoTenants":
        spliced = copy.deepcopy(rich[0])
        spliced["tenantId"] = str(uuid.uuid4())
        body["value"].append(spliced)
    if fault == "noTokens":
        return body
    apps = {
        (graph.subscriptions[entry["subscriptionId"]].app_id, graph.tenant_id)
        for entry in rich
        if entry["subscriptionId"] in graph.subscriptions
    }
    overrides: dict[str, Any] = {}
    if fault == "wrongAudience":
        overrides["aud"] = str(uuid.uuid4())
    now = time.time() - (7200 if fault == "expiredToken" else 0)
    body["validationTokens"] = [
        graph.signing_key.validation_token(app_id, tenant_id, now=now, **overrides)
        for app_id, tenant_id in sorted(apps)
    ]
    return body
