"""The sources this service follows, by name: the one place that knows which exist.

Adding a source is a package under `sources/` and one line in `build_sources` (docs/sources.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..auth import GuestTokens, token_provider_for
from ..change_log import ChangeLog
from ..checkpoints import CheckpointStore
from ..errors import BadRequest
from ..settings import Settings
from ..storage import Storage
from .base import EntryKind, Source
from .graph import Graph
from .graph_api import GraphClient
from .sharepoint import SharePoint, SharePointClient
from .teams import Teams


class UnknownSource(BadRequest):
    pass


class Sources:
    """A registry keyed by each source's name, in the order given (the first is the default of a
    create request that names none, as before there was more than one)."""

    def __init__(self, sources: Iterable[Source]) -> None:
        self._by_name = {source.name: source for source in sources}
        self._by_route = {
            route: kind for source in self._by_name.values() for route, kind in source.entry_kinds.items()
        }

    def __getitem__(self, name: str) -> Source:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownSource(f"unknown source {name!r}") from None

    def __iter__(self) -> Iterator[Source]:
        return iter(self._by_name.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    @property
    def routes(self) -> Mapping[str, EntryKind]:
        """Every notification URL's entry kind, by route under /api/notifications/."""
        return self._by_route

    def for_request(self, document: Any) -> Source:
        """The source a create request names (`"source"`), or the default one."""
        name = document.get("source") if isinstance(document, dict) else None
        if name is None:
            return next(iter(self._by_name.values()))
        if not isinstance(name, str) or name not in self._by_name:
            raise UnknownSource(f"source must be one of {', '.join(self._by_name)}")
        return self._by_name[name]


@dataclass(frozen=True)
class Built:
    sources: Sources
    sharepoint: SharePoint


def build_sources(
    settings: Settings,
    storage: Storage,
    checkpoints: CheckpointStore,
    change_log: ChangeLog,
    *,
    sharepoint_client: SharePointClient | None = None,
    graph_client: GraphClient | None = None,
    guests: GuestTokens | None = None,
) -> Built:
    """Every source this service follows, one line each. Clients may be given: the fast tests'
    talk to SharePoint and Graph in memory. `guests`: the multi-tenant app's tokens, with which
    the clients act for a guest tenant."""
    sharepoint_client = sharepoint_client or SharePointClient(token_provider_for(settings, guests=guests))
    sharepoint = SharePoint.build(settings, storage, checkpoints, change_log, sharepoint_client)
    # One Graph client for OneDrive, Outlook and Teams: Graph throttles an app per tenant across
    # all of them, so one 429 holds every call.
    base_url = settings.graph_base_url
    graph_client = graph_client or GraphClient(token_provider_for(settings, base_url, guests), base_url)
    graph = Graph.build(settings, checkpoints, change_log, graph_client)
    teams = Teams.build(settings, checkpoints, change_log, graph_client)
    return Built(Sources([sharepoint, graph, teams]), sharepoint)
