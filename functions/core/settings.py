"""App settings, read in one place. Every name here is an app setting that infra/ sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_RENEWAL_SCHEDULE = "0 0 */6 * * *"
DEFAULT_RENEWAL_WINDOW_DAYS = 45
DEFAULT_SWEEP_SCHEDULE = "0 0 * * * *"
DEFAULT_SWEEP_MAX_AGE_HOURS = 24
# Graph may deliver a drive or list notification up to 6 hours late (2026-09): a change it has not
# announced yet is found by a sweep within that.
DEFAULT_GRAPH_SWEEP_MAX_AGE_HOURS = 6
# A subscription whose changes the sweep finds unannounced, and that has had no notification for
# this long, is "silent" (SharePoint's probation, a Graph subscription gone quiet).
DEFAULT_SILENT_AFTER_HOURS = 24
SHAREPOINT_AUTH_MODES = ("managed_identity", "certificate", "emulator")

# Names of the settings, so that tests and infra checks can refer to them.
STORAGE_CONNECTION = "AzureWebJobsStorage"
STORAGE_IDENTITY_PREFIX = "AzureWebJobsStorage__"
NOTIFICATION_BASE_URL = "NOTIFICATION_BASE_URL"
SHAREPOINT_TENANT_URL = "SHAREPOINT_TENANT_URL"
GRAPH_BASE_URL = "GRAPH_BASE_URL"
DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com"
SHAREPOINT_AUTH = "SHAREPOINT_AUTH"
SHAREPOINT_CLIENT_ID = "SHAREPOINT_CLIENT_ID"
SHAREPOINT_TENANT_ID = "SHAREPOINT_TENANT_ID"
SHAREPOINT_CERTIFICATE_PATH = "SHAREPOINT_CERTIFICATE_PATH"
RENEWAL_SCHEDULE = "RENEWAL_SCHEDULE"
RENEWAL_WINDOW_DAYS = "RENEWAL_WINDOW_DAYS"
SWEEP_SCHEDULE = "SWEEP_SCHEDULE"
SINK_DISABLE_AFTER_HOURS = "SINK_DISABLE_AFTER_HOURS"
SINK_CATCH_UP_SCHEDULE = "SINK_CATCH_UP_SCHEDULE"
DEFAULT_SINK_CATCH_UP_SCHEDULE = "0 */5 * * * *"
# The key ring that seals sink secrets (sinks/sealing.py); a Key Vault reference in Azure.
SINK_SEALING_KEYS = "SINK_SEALING_KEYS"
SINK_RETRY_BASE_SECONDS = "SINK_RETRY_BASE_SECONDS"
# Set by the local stack only: lets sinks be plain-http URLs on loopback (emulator receivers).
ALLOW_LOOPBACK_HTTP_SINKS = "ALLOW_LOOPBACK_HTTP_SINKS"
# The deployment's health alerts: a Teams workflow or a signed webhook (functions/core/alerts.py).
ALERT_SINK_URL = "ALERT_SINK_URL"
ALERT_SINK_TYPE = "ALERT_SINK_TYPE"
ALERT_SINK_SECRET = "ALERT_SINK_SECRET"  # noqa: S105 - the setting's name, not a secret
ALERT_AFTER_FAILED_READS = "ALERT_AFTER_FAILED_READS"
ALERT_SINK_TYPES = ("teams-workflow", "webhook")
DEFAULT_ALERT_AFTER_FAILED_READS = 5
SWEEP_MAX_AGE_HOURS = "SWEEP_MAX_AGE_HOURS"
GRAPH_SWEEP_MAX_AGE_HOURS = "GRAPH_SWEEP_MAX_AGE_HOURS"
SILENT_AFTER_HOURS = "SILENT_AFTER_HOURS"
# Teams (docs/teams.md): the certificate rich notifications are encrypted to, with its private key
# (a Key Vault reference in Azure), the previous one while a rollover lasts, the app id validation
# tokens are issued to, and whether change rows keep a preview of each message.
TEAMS_CERTIFICATE = "TEAMS_CERTIFICATE"
TEAMS_PREVIOUS_CERTIFICATE = "TEAMS_PREVIOUS_CERTIFICATE"
GRAPH_APP_ID = "GRAPH_APP_ID"
TEAMS_KEEP_PREVIEW = "TEAMS_KEEP_PREVIEW"
# The signing keys of validation tokens: the Microsoft identity platform's, always, in Azure. Only
# the local stack (SHAREPOINT_AUTH=emulator) may point it at the emulator's.
IDENTITY_KEYS_URL = "IDENTITY_KEYS_URL"
MICROSOFT_IDENTITY_KEYS_URL = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
# Many tenants (docs/tenants.md): `multi` serves every organisation that consents to the
# multi-tenant app MULTI_TENANT_APP_ID, whose credential is this app's managed identity (a
# federated identity credential) or, where federation is not offered, a certificate.
TENANCY = "TENANCY"
TENANCY_MODES = ("single", "multi")
MULTI_TENANT_APP_ID = "MULTI_TENANT_APP_ID"
MULTI_TENANT_CERTIFICATE_PATH = "MULTI_TENANT_CERTIFICATE_PATH"
# The Microsoft identity platform's login host, always, in Azure; only the local stack points it
# at the emulator's.
LOGIN_AUTHORITY = "LOGIN_AUTHORITY"
MICROSOFT_LOGIN_AUTHORITY = "https://login.microsoftonline.com"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the setting."""


@dataclass(frozen=True)
class StorageSettings:
    """Either a connection string (Azurite, or a key locally) or identity-based service URIs."""

    connection_string: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    managed_identity_client_id: str | None = None


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    notification_base_url: str
    sharepoint_tenant_url: str
    graph_base_url: str
    sharepoint_auth: str
    sharepoint_client_id: str | None
    sharepoint_tenant_id: str | None
    sharepoint_certificate_path: str | None
    renewal_schedule: str
    renewal_window_days: int
    sweep_schedule: str
    sweep_max_age_hours: int
    graph_sweep_max_age_hours: int
    silent_after_hours: float
    sink_disable_after_hours: int
    sink_retry_base_seconds: int
    sink_catch_up_schedule: str
    sink_sealing_keys: str | None
    allow_loopback_http_sinks: bool
    alert_sink_url: str | None
    alert_sink_type: str
    alert_sink_secret: str | None
    alert_after_failed_reads: int
    teams_certificate: str | None = None
    teams_previous_certificate: str | None = None
    graph_app_id: str | None = None
    teams_keep_preview: bool = True
    identity_keys_url: str = MICROSOFT_IDENTITY_KEYS_URL
    tenancy: str = "single"
    multi_tenant_app_id: str | None = None
    multi_tenant_certificate_path: str | None = None
    login_authority: str = MICROSOFT_LOGIN_AUTHORITY

    @property
    def multi_tenant(self) -> bool:
        return self.tenancy == "multi"

    @property
    def consent_redirect_url(self) -> str:
        """Where an administrator's consent comes back to (registered on the multi-tenant app)."""
        return f"{self.notification_base_url}/api/consent"

    @property
    def sharepoint_notification_url(self) -> str:
        return f"{self.notification_base_url}/api/notifications/sharepoint"

    @property
    def graph_notification_url(self) -> str:
        return f"{self.notification_base_url}/api/notifications/graph"

    @property
    def graph_lifecycle_url(self) -> str:
        return f"{self.notification_base_url}/api/notifications/graph/lifecycle"

    @property
    def teams_notification_url(self) -> str:
        return f"{self.notification_base_url}/api/notifications/teams"

    @property
    def teams_lifecycle_url(self) -> str:
        return f"{self.notification_base_url}/api/notifications/teams/lifecycle"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        auth = environ.get(SHAREPOINT_AUTH, "managed_identity").strip().lower()
        if auth not in SHAREPOINT_AUTH_MODES:
            raise SettingsError(
                f"{SHAREPOINT_AUTH} must be one of {', '.join(SHAREPOINT_AUTH_MODES)}; got {auth!r}"
            )
        settings = cls(
            storage=_storage_settings(environ),
            notification_base_url=_absolute_url(environ, NOTIFICATION_BASE_URL),
            sharepoint_tenant_url=_absolute_url(environ, SHAREPOINT_TENANT_URL),
            graph_base_url=_absolute_url({GRAPH_BASE_URL: DEFAULT_GRAPH_BASE_URL, **environ}, GRAPH_BASE_URL),
            sharepoint_auth=auth,
            sharepoint_client_id=environ.get(SHAREPOINT_CLIENT_ID) or None,
            sharepoint_tenant_id=environ.get(SHAREPOINT_TENANT_ID) or None,
            sharepoint_certificate_path=environ.get(SHAREPOINT_CERTIFICATE_PATH) or None,
            renewal_schedule=_ncrontab(environ, RENEWAL_SCHEDULE, DEFAULT_RENEWAL_SCHEDULE),
            renewal_window_days=_whole_number(
                environ, RENEWAL_WINDOW_DAYS, DEFAULT_RENEWAL_WINDOW_DAYS, minimum=1, maximum=179
            ),
            sweep_schedule=_ncrontab(environ, SWEEP_SCHEDULE, DEFAULT_SWEEP_SCHEDULE),
            # 0: every list on every run. At most 30 days, well inside SharePoint's 60-day log.
            sweep_max_age_hours=_whole_number(
                environ, SWEEP_MAX_AGE_HOURS, DEFAULT_SWEEP_MAX_AGE_HOURS, minimum=0, maximum=720
            ),
            silent_after_hours=_hours(environ, SILENT_AFTER_HOURS, DEFAULT_SILENT_AFTER_HOURS, maximum=720),
            graph_sweep_max_age_hours=_whole_number(
                environ,
                GRAPH_SWEEP_MAX_AGE_HOURS,
                DEFAULT_GRAPH_SWEEP_MAX_AGE_HOURS,
                minimum=0,
                maximum=720,
            ),
            # Standard Webhooks' example schedule spans about 75 hours; Svix disables after 5 days.
            sink_disable_after_hours=_whole_number(
                environ, SINK_DISABLE_AFTER_HOURS, 72, minimum=1, maximum=720
            ),
            sink_retry_base_seconds=_whole_number(
                environ, SINK_RETRY_BASE_SECONDS, 30, minimum=1, maximum=3600
            ),
            sink_catch_up_schedule=_ncrontab(environ, SINK_CATCH_UP_SCHEDULE, DEFAULT_SINK_CATCH_UP_SCHEDULE),
            sink_sealing_keys=environ.get(SINK_SEALING_KEYS, "").strip() or None,
            allow_loopback_http_sinks=environ.get(ALLOW_LOOPBACK_HTTP_SINKS, "").strip().lower() == "true",
            alert_sink_url=environ.get(ALERT_SINK_URL, "").strip() or None,
            alert_sink_type=_one_of(environ, ALERT_SINK_TYPE, ALERT_SINK_TYPES),
            alert_sink_secret=environ.get(ALERT_SINK_SECRET, "").strip() or None,
            alert_after_failed_reads=_whole_number(
                environ, ALERT_AFTER_FAILED_READS, DEFAULT_ALERT_AFTER_FAILED_READS, minimum=1, maximum=1000
            ),
            teams_certificate=environ.get(TEAMS_CERTIFICATE, "").strip() or None,
            teams_previous_certificate=environ.get(TEAMS_PREVIOUS_CERTIFICATE, "").strip() or None,
            graph_app_id=environ.get(GRAPH_APP_ID, "").strip() or None,
            teams_keep_preview=_flag(environ, TEAMS_KEEP_PREVIEW, default=True),
            identity_keys_url=_emulator_only_url(
                environ,
                auth,
                IDENTITY_KEYS_URL,
                MICROSOFT_IDENTITY_KEYS_URL,
                "validation tokens are checked against the Microsoft identity platform's keys",
            ),
            tenancy=_one_of(environ, TENANCY, TENANCY_MODES),
            multi_tenant_app_id=environ.get(MULTI_TENANT_APP_ID, "").strip() or None,
            multi_tenant_certificate_path=environ.get(MULTI_TENANT_CERTIFICATE_PATH, "").strip() or None,
            login_authority=_emulator_only_url(
                environ,
                auth,
                LOGIN_AUTHORITY,
                MICROSOFT_LOGIN_AUTHORITY,
                "tokens come from the Microsoft identity platform",
            ),
        )
        if settings.multi_tenant:
            for name, value in (
                (MULTI_TENANT_APP_ID, settings.multi_tenant_app_id),
                (SHAREPOINT_TENANT_ID, settings.sharepoint_tenant_id),
            ):
                if not value:
                    raise SettingsError(f"{name} is required when {TENANCY}=multi")
        if auth == "certificate":
            for name, value in (
                (SHAREPOINT_CLIENT_ID, settings.sharepoint_client_id),
                (SHAREPOINT_TENANT_ID, settings.sharepoint_tenant_id),
                (SHAREPOINT_CERTIFICATE_PATH, settings.sharepoint_certificate_path),
            ):
                if not value:
                    raise SettingsError(f"{name} is required when {SHAREPOINT_AUTH}=certificate")
        return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once (app settings do not change without a restart)."""
    return Settings.from_environ(os.environ)


def _storage_settings(environ: Mapping[str, str]) -> StorageSettings:
    connection = environ.get(STORAGE_CONNECTION, "").strip()
    if connection:
        return StorageSettings(connection_string=connection)
    queue_uri = environ.get(f"{STORAGE_IDENTITY_PREFIX}queueServiceUri", "").strip()
    table_uri = environ.get(f"{STORAGE_IDENTITY_PREFIX}tableServiceUri", "").strip()
    if not queue_uri or not table_uri:
        raise SettingsError(
            f"{STORAGE_CONNECTION} is not set: set it to a connection string, or set "
            f"{STORAGE_IDENTITY_PREFIX}queueServiceUri and {STORAGE_IDENTITY_PREFIX}tableServiceUri "
            "for identity-based storage"
        )
    return StorageSettings(
        queue_service_uri=queue_uri,
        table_service_uri=table_uri,
        managed_identity_client_id=environ.get(f"{STORAGE_IDENTITY_PREFIX}clientId") or None,
    )


def _absolute_url(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip().rstrip("/")
    if not value:
        raise SettingsError(f"{name} is required")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an absolute http(s) URL; got {value!r}")
    return value


def _ncrontab(environ: Mapping[str, str], name: str, default: str) -> str:
    """Timer bindings read it as `%NAME%`; check its six fields here so a typo is reported by
    name rather than as a timer that never fires."""
    value = environ.get(name, "").strip() or default
    if len(value.split()) != 6:
        raise SettingsError(
            f"{name} must be a six-field NCRONTAB expression "
            f"'{{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}'; got {value!r}"
        )
    return value


def _flag(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise SettingsError(f"{name} must be true or false; got {raw!r}")
    return raw == "true"


def _emulator_only_url(environ: Mapping[str, str], auth: str, name: str, default: str, azure: str) -> str:
    """A URL only the local stack may move (to the emulator); `azure` says what Azure uses instead."""
    if not environ.get(name, "").strip():
        return default
    if auth != "emulator":
        raise SettingsError(f"{name} may be set only with {SHAREPOINT_AUTH}=emulator: in Azure, {azure}")
    return _absolute_url(environ, name)


def _one_of(environ: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = environ.get(name, "").strip().lower() or allowed[0]
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _hours(environ: Mapping[str, str], name: str, default: float, *, maximum: float) -> float:
    """A positive number of hours; decimals allowed (0.5 is 30 minutes)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of hours; got {raw!r}") from None
    if not 0 < value <= maximum:  # also refuses nan and inf
        raise SettingsError(f"{name} must be more than 0 and at most {maximum}; got {raw!r}")
    return value


def _whole_number(environ: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number; got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}; got {value}")
    return value
