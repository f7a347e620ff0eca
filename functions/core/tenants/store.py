"""The `tenants` table: one entity per tenant (partition `tenant`), and the consent requests not
yet answered (partition `consent`, keyed by the request's nonce, deleted when answered so that
an answer is taken once). Every write after the first is conditional on the ETag read."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from ..errors import Conflict
from ..resources import TENANTS_TABLE
from ..storage import TableRepository, is_valid_key, outages_reported
from .record import TenantRecord

TENANT_PARTITION = "tenant"
CONSENT_PARTITION = "consent"


class TenantChanged(Conflict):
    """The tenant was changed by another request since it was read."""

    def public_message(self) -> str:
        return f"tenant {self} was changed by another request; retry"


@dataclass(frozen=True)
class ConsentRequest:
    nonce: str
    tenant_id: str
    expires: datetime


class TenantStore(TableRepository):
    table_name = TENANTS_TABLE

    def get(self, tenant_id: str) -> TenantRecord | None:
        if not is_valid_key(tenant_id):
            return None
        with outages_reported(f"reading tenant {tenant_id}"):
            try:
                entity = self._table.get_entity(TENANT_PARTITION, tenant_id)
            except ResourceNotFoundError:
                return None
        return _record(entity)

    def all(self) -> list[TenantRecord]:
        with outages_reported("listing tenants"):
            entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": TENANT_PARTITION})
            return [_record(entity) for entity in entities]

    def create(self, record: TenantRecord) -> TenantRecord:
        """Raises TenantChanged when the tenant is already there."""
        with outages_reported(f"saving tenant {record.id}"):
            try:
                metadata = self._table.create_entity(_entity(record))
            except ResourceExistsError:
                raise TenantChanged(record.id) from None
        return replace(record, etag=metadata.get("etag"))

    def save(self, record: TenantRecord) -> TenantRecord:
        """Write the tenant if nobody changed it since it was read; raises TenantChanged."""
        with outages_reported(f"saving tenant {record.id}"):
            try:
                metadata = self._replace_if_unchanged(_entity(record), record.etag or "")
            except (ResourceModifiedError, ResourceNotFoundError):
                raise TenantChanged(record.id) from None
        return replace(record, etag=metadata.get("etag"))

    def ask_consent(self, request: ConsentRequest) -> None:
        with outages_reported(f"saving a consent request of tenant {request.tenant_id}"):
            self._table.create_entity(
                {
                    "PartitionKey": CONSENT_PARTITION,
                    "RowKey": request.nonce,
                    "tenantId": request.tenant_id,
                    "expires": request.expires,
                }
            )

    def take_consent(self, nonce: str) -> ConsentRequest | None:
        """The consent request with this nonce, deleted as it is taken: of two answers carrying
        it, one gets it (the delete is conditional on the ETag read); None for any other."""
        if not is_valid_key(nonce):
            return None
        with outages_reported("reading a consent request"):
            try:
                entity = self._table.get_entity(CONSENT_PARTITION, nonce)
                self._table.delete_entity(
                    CONSENT_PARTITION,
                    nonce,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceNotFoundError, ResourceModifiedError):
                return None
        return ConsentRequest(nonce, entity["tenantId"], entity["expires"])


def _entity(record: TenantRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": TENANT_PARTITION,
        "RowKey": record.id,
        "displayName": record.display_name,
        "sharePointUrl": record.sharepoint_url,
        "state": record.state,
        "scopes": json.dumps(list(record.scopes)),
        "created": record.created,
        "consentedAt": record.consented_at,
        "revokedAt": record.revoked_at,
        "removedAt": record.removed_at,
        "error": record.error,
    }
    return {name: value for name, value in entity.items() if value is not None}


def _record(entity: Any) -> TenantRecord:
    return TenantRecord(
        id=entity["RowKey"],
        display_name=entity.get("displayName", ""),
        sharepoint_url=entity["sharePointUrl"],
        state=entity["state"],
        created=entity["created"],
        scopes=tuple(json.loads(entity.get("scopes") or "[]")),
        consented_at=entity.get("consentedAt"),
        revoked_at=entity.get("revokedAt"),
        removed_at=entity.get("removedAt"),
        error=entity.get("error"),
        etag=str(entity.metadata["etag"]),
    )
