"""Rate limits: requests per API key (and per staff user), bad API keys per client address, and
provider callbacks per address. Counters live in the cache (CACHE_URL: Redis when several web
processes run, so they share one count)."""

import ipaddress
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from retention_crm.api.models import ApiKey

AUTH_FAILURE_WINDOW_SECONDS = 60


def client_address(request) -> str | None:
    """The caller's IP address: REMOTE_ADDR, or with NUM_PROXIES reverse proxies in front the
    address the outermost of ours saw (X-Forwarded-For is read from the right, so a client cannot
    pick its own); None when there is no valid one. Shared by the API's throttles and the admin's
    login lockout (django-axes)."""
    meta = request.META
    address = meta.get("REMOTE_ADDR")
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    proxies = settings.NUM_PROXIES
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            address = hops[-min(proxies, len(hops))]
    try:
        return str(ipaddress.ip_address(address or ""))
    except ValueError:
        return None


def _ident(request) -> str:
    return client_address(request) or "unknown"


class PerKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class CallbackRateThrottle(SimpleRateThrottle):
    """Provider callbacks per client address (CAMPAIGN_CALLBACK_RATE_LIMIT)."""

    scope = "callbacks"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": _ident(request)}


# --- Bad API keys per address ------------------------------------------------------------------------
# After API_AUTH_FAILURES_PER_MINUTE bad keys from one address in a minute, requests with a key from
# that address answer 429 until the minute is over, without the key being looked at.


def _failure_key(address: str, window: int) -> str:
    return f"api-auth-failures:{address}:{window}"


def _window() -> tuple[int, int]:
    now = int(time.time())
    return now // AUTH_FAILURE_WINDOW_SECONDS, AUTH_FAILURE_WINDOW_SECONDS - now % AUTH_FAILURE_WINDOW_SECONDS


def auth_failures_check(request) -> None:
    """Raises Throttled (429) while the caller's address is over its bad-key limit."""
    window, remaining = _window()
    failures = cache.get(_failure_key(_ident(request), window), 0)
    if failures >= settings.API_AUTH_FAILURES_PER_MINUTE:
        raise Throttled(wait=remaining, detail="Too many bad API keys from this address; wait and try again.")


def auth_failure_record(request) -> None:
    window, _ = _window()
    key = _failure_key(_ident(request), window)
    cache.add(key, 0, timeout=2 * AUTH_FAILURE_WINDOW_SECONDS)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=2 * AUTH_FAILURE_WINDOW_SECONDS)
