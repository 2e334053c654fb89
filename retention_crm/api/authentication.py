"""`Authorization: Api-Key <key>` for the shop's backend; staff sessions for the browsable API.

Bad keys are counted per client address: past API_AUTH_FAILURES_PER_MINUTE in a minute, the
address gets 429 until the minute ends (see retention_crm/api/throttling.py)."""

from dataclasses import dataclass

from rest_framework import authentication, exceptions

from retention_crm.api.keys import api_key_check
from retention_crm.api.models import ApiKey
from retention_crm.api.throttling import auth_failure_record, auth_failures_check

KEYWORD = "Api-Key"


@dataclass(frozen=True)
class ApiClient:
    """The caller behind an API key; stands where DRF expects a user."""

    key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    pk: None = None

    @property
    def username(self) -> str:
        return f"api-key:{self.key.name}"

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        try:
            keyword, _, raw_key = header.decode("latin-1").partition(" ")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.") from None
        if keyword != KEYWORD:
            return None  # another scheme: let the next authenticator (or none) decide
        auth_failures_check(request)  # 429 while this address is over its bad-key limit
        raw_key = raw_key.strip()
        if not raw_key or " " in raw_key or len(raw_key) > 200:
            auth_failure_record(request)
            raise exceptions.AuthenticationFailed("Malformed API key.")
        key = api_key_check(raw_key=raw_key)
        if key is None:
            auth_failure_record(request)
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        return ApiClient(key=key), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when no credentials are given.
        return KEYWORD
