import pytest

from functions.core.settings import Settings, SettingsError

BASE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "NOTIFICATION_BASE_URL": "https://app.azurewebsites.net/",
    "SHAREPOINT_TENANT_URL": "https://contoso.sharepoint.com",
}


def test_defaults_apply_where_settings_are_silent():
    settings = Settings.from_environ(BASE)
    assert settings.renewal_window_days == 45
    assert settings.renewal_schedule == "0 0 */6 * * *"
    assert settings.sharepoint_auth == "managed_identity"
    assert (
        settings.sharepoint_notification_url == "https://app.azurewebsites.net/api/notifications/sharepoint"
    )


def test_identity_based_storage_is_read_from_the_double_underscore_settings():
    environ = {k: v for k, v in BASE.items() if k != "AzureWebJobsStorage"}
    environ.update(
        {
            "AzureWebJobsStorage__queueServiceUri": "https://st.queue.core.windows.net",
            "AzureWebJobsStorage__tableServiceUri": "https://st.table.core.windows.net",
            "AzureWebJobsStorage__clientId": "cid",
        }
    )
    storage = Settings.from_environ(environ).storage
    assert (storage.connection_string, storage.managed_identity_client_id) == (None, "cid")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"NOTIFICATION_BASE_URL": ""}, "NOTIFICATION_BASE_URL"),
        ({"SHAREPOINT_TENANT_URL": "contoso"}, "SHAREPOINT_TENANT_URL"),
        ({"RENEWAL_WINDOW_DAYS": "soon"}, "RENEWAL_WINDOW_DAYS"),
        ({"RENEWAL_WINDOW_DAYS": "200"}, "RENEWAL_WINDOW_DAYS"),
        ({"SHAREPOINT_AUTH": "secret"}, "SHAREPOINT_AUTH"),
        ({"SHAREPOINT_AUTH": "certificate"}, "SHAREPOINT_CLIENT_ID"),
        ({"AzureWebJobsStorage": ""}, "AzureWebJobsStorage"),
        ({"RENEWAL_SCHEDULE": "0 */6 * * *"}, "RENEWAL_SCHEDULE"),
        ({"SILENT_AFTER_HOURS": "0"}, "SILENT_AFTER_HOURS"),
        ({"SILENT_AFTER_HOURS": "nan"}, "SILENT_AFTER_HOURS"),
        ({"SILENT_AFTER_HOURS": "721"}, "SILENT_AFTER_HOURS"),
        ({"SILENT_AFTER_HOURS": "a day"}, "SILENT_AFTER_HOURS"),
    ],
)
def test_a_bad_setting_is_reported_by_name(change, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_environ({**BASE, **change})


def test_silent_after_takes_hours_with_decimals():
    assert Settings.from_environ(BASE).silent_after_hours == 24
    assert Settings.from_environ({**BASE, "SILENT_AFTER_HOURS": "0.5"}).silent_after_hours == 0.5
