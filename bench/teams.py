"""Teams rows: what verifying and decrypting a rich notification costs against the bare AES
decryption of the same payloads, and a rich notification POST against a plain Graph one."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from functions.core.resources import NOTIFICATIONS_QUEUE
from functions.core.services import Services
from functions.core.sources.graph.models import CreateGraphSubscriptionRequest
from functions.core.sources.teams.crypto import DecryptionKey, DecryptionKeys
from functions.core.sources.teams.models import CreateTeamsSubscriptionRequest, EncryptedContent
from local.certificates import new_teams_certificate
from local.clients import EmulatorClient
from local.m365.graph import rich
from local.m365.tokens import DEFAULT_APP_ID
from local.stack import Stack

from .table import Row, side_by_side

BATCH = 1000
MESSAGE = {
    "id": "1700000000000",
    "from": {"user": {"id": "u-1", "displayName": "Alice"}},
    "body": {"contentType": "html", "content": "<p>" + "A status line of an ordinary length. " * 8 + "</p>"},
}


def bench_decryption(rounds: int) -> list[Row]:
    """1,000 items: RSA-OAEP unwrap, HMAC check, AES-CBC decrypt, parse (what the worker does)
    against AES-CBC decrypt of the same ciphertexts with the keys already in hand."""
    key = DecryptionKey.load(new_teams_certificate())
    keys = DecryptionKeys([key])
    items = [
        EncryptedContent.model_validate(rich.encrypt(MESSAGE, key.certificate_base64, key.certificate_id))
        for _ in range(BATCH)
    ]
    oaep = OAEP(mgf=MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303 - Graph's
    plain = [
        (key.private_key.decrypt(base64.b64decode(i.data_key), oaep), base64.b64decode(i.data)) for i in items
    ]

    def ours() -> None:
        for item in items:
            keys.decrypt(item)

    def bare() -> None:
        for symmetric_key, data in plain:
            decryptor = Cipher(algorithms.AES(symmetric_key), modes.CBC(symmetric_key[:16])).decryptor()
            unpadder = padding.PKCS7(128).unpadder()
            unpadder.update(decryptor.update(data) + decryptor.finalize())
            unpadder.finalize()

    mine, base = side_by_side(ours, bare, max(3, rounds // 40))
    return [Row("verify and decrypt 1,000 rich notifications", "bare AES-CBC of the same 1,000", mine, base)]


def bench_rich_intake(stack: Stack, services: Services, rounds: int) -> list[Row]:
    """A POST of one rich notification (its validationToken verified; the token is new to the
    instance only once, as Graph reuses it) against a plain Graph notification's POST."""
    emulator = EmulatorClient(stack.emulator_url)
    team = emulator.create_team(f"bench-{uuid.uuid4().hex[:6]}", ["General"])
    resource = f"/teams/{team['id']}/channels/{team['channels']['General']}/messages"
    teams = services.subscriptions.create(CreateTeamsSubscriptionRequest(source="teams", resource=resource))
    remote = next(s for s in emulator.graph_subscriptions() if s["id"] == teams.id)
    signed = emulator.http.post("/_emulator/teams/validation-token", json={"appId": DEFAULT_APP_ID}).json()
    tenant = signed["tenantId"]
    key = DecryptionKey.load(stack.teams_certificate)
    entry = {
        "subscriptionId": teams.id,
        "clientState": remote["clientState"],
        "changeType": "created",
        "resource": f"teams('{team['id']}')/channels('x')/messages('1')",
        "tenantId": tenant,
        "encryptedContent": rich.encrypt(MESSAGE, key.certificate_base64, key.certificate_id),
    }
    rich_body = json.dumps({"value": [entry], "validationTokens": [signed["token"]]})
    user = f"bench-{uuid.uuid4().hex[:6]}@contoso.com"
    drive = emulator.drive_of(user)
    graph = services.subscriptions.create(
        CreateGraphSubscriptionRequest(
            source="graph", resource=f"/drives/{drive}/root", change_type="updated"
        )
    )
    graph_state = next(s["clientState"] for s in emulator.graph_subscriptions() if s["id"] == graph.id)
    plain_body = json.dumps(
        {
            "value": [
                {
                    "subscriptionId": graph.id,
                    "clientState": graph_state,
                    "changeType": "updated",
                    "resource": f"drives/{drive}/root",
                    "tenantId": tenant,
                    "subscriptionExpirationDateTime": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                }
            ]
        }
    )
    http = httpx.Client()

    def post(path: str, body: str) -> Callable[[], None]:
        def send() -> None:
            answer = http.post(f"{stack.functions_url}/api/notifications/{path}", content=body)
            assert answer.status_code == 202 and answer.json()["accepted"] == 1, answer.text

        return send

    mine, base = side_by_side(post("teams", rich_body), post("graph", plain_body), rounds)
    services.storage.queue(NOTIFICATIONS_QUEUE).clear_messages()
    return [
        Row(
            "intake POST, 1 rich Teams notification (HTTP)",
            "intake POST, 1 plain Graph notification",
            mine,
            base,
        )
    ]
