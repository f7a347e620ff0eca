"""The local host's reading of route templates, host.json and settings."""

from local.functions_host.config import (
    QueueOptions,
    apply_host_overrides,
    resolve_setting_expression,
    timespan_seconds,
)
from local.functions_host.http import compile_route


def test_route_templates_bind_parameters():
    match = compile_route("subscriptions/{id}/renew").fullmatch("subscriptions/abc/renew")
    assert match is not None
    assert match.groupdict() == {"id": "abc"}
    assert compile_route("subscriptions/{id}").fullmatch("subscriptions/abc/renew") is None
    assert compile_route("items/{n:int}").fullmatch("items/x") is None
    rest = compile_route("files/{*rest}").fullmatch("files/a/b/c")
    assert rest is not None
    assert rest.group("rest") == "a/b/c"


def test_timespans_read_like_dotnet():
    assert timespan_seconds("00:00:30") == 30
    assert timespan_seconds("00:01:00.5") == 60.5
    assert timespan_seconds("1.02:00:00") == 93600


def test_queue_options_take_host_json_values_and_the_hosts_defaults():
    options = QueueOptions.from_host_json(
        {"extensions": {"queues": {"batchSize": 4, "visibilityTimeout": "00:00:05"}}}
    )
    assert (options.batch_size, options.new_batch_threshold, options.visibility_timeout) == (4, 2, 5)
    assert (options.max_dequeue_count, options.max_polling_interval) == (5, 60)


def test_app_settings_override_host_json_like_azure():
    host = {"extensions": {"queues": {"maxDequeueCount": 5}}}
    apply_host_overrides(host, {"AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "2"})
    assert host["extensions"]["queues"]["maxDequeueCount"] == "2"


def test_binding_expressions_are_resolved_from_settings():
    assert (
        resolve_setting_expression("%RENEWAL_SCHEDULE%", {"RENEWAL_SCHEDULE": "0 * * * * *"}) == "0 * * * * *"
    )


def test_an_omitted_optional_last_segment_takes_its_slash_with_it_as_in_azure():
    route = compile_route("console/{file?}")
    assert [bool(route.fullmatch(path)) for path in ("console", "console/", "console/a.js", "consoles")] == [
        True,
        True,
        True,
        False,
    ]
