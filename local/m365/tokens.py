"""Bearer tokens, as Entra ID would issue them: each names its app, and a delegated one the user
the app acts for (an app-only token names none)."""

from __future__ import annotations

import secrets

TOKEN_LIFETIME_SECONDS = 3599
DEFAULT_APP_ID = "00000000-0000-0000-0000-0000000000a1"


class Tokens:
    """Issued tokens stay valid across a reset, as real ones outlive a test's tenant state."""

    def __init__(self) -> None:
        self._issued: dict[str, tuple[float, str, str | None]] = {}
        # The resource a token was asked for (`{resource}/.default`); tokens of the emulator's own
        # grant (`/_emulator/token`) name none and are taken by every service.
        self._audiences: dict[str, str] = {}

    def issue(
        self,
        wall_time: float,
        app_id: str = DEFAULT_APP_ID,
        user: str | None = None,
        audience: str | None = None,
    ) -> str:
        token = secrets.token_urlsafe(32)
        self._issued[token] = (wall_time + TOKEN_LIFETIME_SECONDS, app_id, user)
        if audience is not None:
            self._audiences[token] = audience
        return token

    def audience_of(self, token: str) -> str | None:
        return self._audiences.get(token)

    def revoke_app(self, app_id: str) -> None:
        """Every token of an app stops working (its service principal was deleted)."""
        for token in [token for token, issued in self._issued.items() if issued[1] == app_id]:
            del self._issued[token]
            self._audiences.pop(token, None)

    def app_of(self, token: str, wall_time: float) -> str | None:
        """The app a valid bearer token was issued to; None for a missing or expired token."""
        issued = self._issued.get(token)
        if issued is None or wall_time >= issued[0]:
            return None
        return issued[1]

    def user_of(self, token: str, wall_time: float) -> str | None:
        """The user a valid delegated token acts for; None for an app-only or invalid token."""
        issued = self._issued.get(token)
        if issued is None or wall_time >= issued[0]:
            return None
        return issued[2]
