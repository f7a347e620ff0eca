"""Azurite's development account, for the local stack only (never deployed).

The deployed code knows only `UseDevelopmentStorage=true` (which the storage SDKs expand to the
default ports); the local stack runs Azurite on free ports, so it spells the account out.
"""

from __future__ import annotations

# Azurite's published, well-known development account key (not a secret).
DEVELOPMENT_ACCOUNT_NAME = "devstoreaccount1"
DEVELOPMENT_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def development_connection_string(
    host: str = "127.0.0.1", *, blob_port: int = 10000, queue_port: int = 10001, table_port: int = 10002
) -> str:
    """The connection string of Azurite's development account on the given ports."""
    account = DEVELOPMENT_ACCOUNT_NAME
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};"
        f"AccountKey={DEVELOPMENT_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{account};"
        f"QueueEndpoint=http://{host}:{queue_port}/{account};"
        f"TableEndpoint=http://{host}:{table_port}/{account};"
    )
