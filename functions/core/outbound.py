"""Every outbound HTTP call goes through `send`: a timeout, bounded retries that honour
`Retry-After`, and one log line per failure naming the operation and the subscription."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from .errors import ServiceError, retry_after_header
from .tenancy import throttle_key

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

USER_AGENT = "NONISV|M365Webhooks|m365-webhooks/1.0"
THROTTLED_STATUSES = frozenset({429, 503})
TRANSIENT_STATUSES = frozenset({500, 502, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    # A Retry-After longer than this is not slept through: the caller gives the work back
    # (the queue retries the message later) instead of holding an invocation open.
    max_retry_after: float = 30.0
    connect_timeout: float = 3.05
    read_timeout: float = 15.0


DEFAULT_POLICY = RetryPolicy()


class ServiceThrottle:
    """What a 429 from SharePoint or Graph says about every call this process makes to it for the
    same tenant: they count an app's usage per tenant across all endpoints and throttle any further
    request until the Retry-After has passed, so no call of ours for that tenant goes out before
    then; another tenant's calls go on. One per service."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.0, self._until.get(throttle_key(), 0.0) - self._clock())

    def hold(self, seconds: float) -> None:
        key = throttle_key()
        with self._lock:
            self._until[key] = max(self._until.get(key, 0.0), self._clock() + seconds)


def throttled_wait(error: BaseException) -> float | None:
    """How long to leave a resource alone after `error`: a throttled call's Retry-After, plus a
    second so that a retry scheduled in whole seconds cannot come back before it has passed.
    None for any other failure."""
    if not isinstance(error, UpstreamError) or error.status not in THROTTLED_STATUSES:
        return None
    return None if error.retry_after is None else error.retry_after + 1


class UpstreamError(ServiceError):
    """A call to SharePoint, Graph or a connector failed for good. Passed on to an API caller with
    the upstream's status where it is the caller's to fix (400, 404), else as 502 or 503."""

    error_code = "UpstreamError"

    def __init__(
        self,
        *,
        service: str,
        operation: str,
        status: int | None,
        message: str,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        location: str | None = None,
    ) -> None:
        self.service = service
        self.operation = operation
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        # Graph's 410 names the link to start a delta round over from.
        self.location = location
        self.upstream_message = message
        status_text = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{service} {operation} failed: {status_text}: {message}")
        if status in (400, 404):
            self.http_status = status
        else:
            self.http_status = 503 if status in (429, 503) else 502

    def public_message(self) -> str:
        return f"{self.service} {self.operation}: {self.upstream_message}"

    def headers(self) -> dict[str, str]:
        return retry_after_header(self.retry_after)

    def details(self) -> dict[str, Any]:
        return {"upstreamStatus": self.status, "upstreamCode": self.code, "requestId": self.request_id}


# Connections kept per host, for Microsoft 365 and storage alike. One instance runs up to
# batchSize + newBatchThreshold queue messages at once (host.json: 16 + 16), the renewal timer 8
# renewals, and HTTP requests beside them: below that, requests (whose default is 10) drops
# connections with "Connection pool is full" and opens new ones under load. A test keeps this in
# step with host.json.
CONNECTION_POOL_SIZE = 48


def new_session() -> requests.Session:
    session = pooled_session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def pooled_session() -> requests.Session:
    """A session whose pool holds CONNECTION_POOL_SIZE connections per host (requests and the
    Azure SDKs would keep 10). It ignores proxy variables and ~/.netrc, which requests otherwise
    reads again for every request (half a millisecond of CPU each); Functions call Azure and
    Microsoft 365 directly."""

    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_maxsize=CONNECTION_POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    service: str,
    operation: str,
    subscription_id: str | None = None,
    json: Any = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    idempotent: bool = True,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
    secret_url: bool = False,
    throttle: ServiceThrottle | None = None,
) -> requests.Response:
    """Send one request; retry 429/503 always (nothing was done), 5xx and network errors only
    when the request is idempotent. Returns any response below 400; raises UpstreamError.

    `secret_url`: the URL is a credential (a connector's), so a network error is reported by its
    type only (the requests library puts the URL in its messages). `throttle`: the service's,
    waited for before each attempt and held on a 429."""

    subject = subscription_id or "-"
    for attempt in range(1, policy.max_attempts + 1):
        last = attempt == policy.max_attempts
        if throttle is not None and (held := throttle.remaining()) > 0:
            if held > policy.max_retry_after:
                log.warning(
                    "%s %s for subscription %s not sent: the service throttled this app for %.0fs "
                    "more; handing the work back",
                    service,
                    operation,
                    subject,
                    held,
                )
                raise UpstreamError(
                    service=service,
                    operation=operation,
                    status=429,
                    message="not sent: the service's Retry-After for this app has not passed",
                    retry_after=held,
                )
            sleep(held)
        try:
            response = session.request(
                method,
                url,
                json=json,
                data=data,
                headers=dict(headers or {}),
                timeout=(policy.connect_timeout, policy.read_timeout),
            )
        except requests.RequestException as error:
            reason = type(error).__name__ if secret_url else f"{type(error).__name__}: {error}"
            if last or not idempotent:
                log.error(
                    "%s %s failed for subscription %s: %s (attempt %d of %d, giving up)",
                    service,
                    operation,
                    subject,
                    reason,
                    attempt,
                    policy.max_attempts,
                )
                raise UpstreamError(
                    service=service, operation=operation, status=None, message=reason
                ) from error
            delay = _backoff(policy, attempt)
            log.warning(
                "%s %s failed for subscription %s: %s; retrying in %.1fs (attempt %d of %d)",
                service,
                operation,
                subject,
                reason,
                delay,
                attempt,
                policy.max_attempts,
            )
            sleep(delay)
            continue

        if response.status_code < 400:
            return response

        retryable = response.status_code in THROTTLED_STATUSES or (
            idempotent and response.status_code in TRANSIENT_STATUSES
        )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if throttle is not None and response.status_code == 429 and retry_after is not None:
            throttle.hold(retry_after)
        delay = retry_after if retry_after is not None else _backoff(policy, attempt)
        failure = _upstream_error(response, service, operation, retry_after)
        if retryable and not last and delay > policy.max_retry_after:
            log.warning(
                "%s %s throttled for subscription %s: HTTP %d with Retry-After %.0fs, longer than "
                "this call waits; handing the work back (request id %s)",
                service,
                operation,
                subject,
                response.status_code,
                delay,
                failure.request_id or "-",
            )
            raise failure
        if not retryable or last:
            log.error(
                "%s %s failed for subscription %s: HTTP %d %s (request id %s, attempt %d of %d, giving up)",
                service,
                operation,
                subject,
                response.status_code,
                failure.upstream_message,
                failure.request_id or "-",
                attempt,
                policy.max_attempts,
            )
            raise failure
        log.warning(
            "%s %s failed for subscription %s: HTTP %d; retrying in %.1fs (attempt %d of %d)",
            service,
            operation,
            subject,
            response.status_code,
            delay,
            attempt,
            policy.max_attempts,
        )
        sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` is either delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, float((when - (now or datetime.now(UTC))).total_seconds()))


def _backoff(policy: RetryPolicy, attempt: int) -> float:
    return float(policy.base_delay * (2 ** (attempt - 1)) * (0.5 + random.random() / 2))


def _upstream_error(
    response: requests.Response, service: str, operation: str, retry_after: float | None
) -> UpstreamError:
    code, message = _error_code_and_message(response)
    return UpstreamError(
        service=service,
        operation=operation,
        status=response.status_code,
        code=code,
        message=message,
        request_id=response.headers.get("request-id") or response.headers.get("SPRequestGuid"),
        retry_after=retry_after,
        location=response.headers.get("Location"),
    )


def _error_code_and_message(response: requests.Response) -> tuple[str | None, str]:
    """SharePoint answers `{"odata.error": {"code", "message": {"value"}}}` (or `error` in
    verbose mode); Graph answers `{"error": {"code", "message"}}`; the identity platform
    `{"error": "…", "error_description": "…", "error_codes": […]}`."""
    try:
        body = response.json()
    except ValueError:
        return None, (response.text or response.reason or "")[:300]
    error = body.get("odata.error") or body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str) and isinstance(body.get("error_description"), str):
        # The identity platform: `{"error": "invalid_request", "error_description": "AADSTS70021: …",
        # "error_codes": [70021]}`; the AADSTS code is what tells a refusal from weather.
        codes = body.get("error_codes")
        code = f"AADSTS{codes[0]}" if isinstance(codes, list) and codes else error
        return code, body["error_description"].splitlines()[0][:300]
    if not isinstance(error, dict):
        return None, str(body)[:300]
    message = error.get("message")
    if isinstance(message, dict):
        message = message.get("value")
    return error.get("code"), str(message or "")[:300]
