"""Request rate limits per API key (and per staff user), configurable with API_RATE_LIMIT."""

from rest_framework.throttling import SimpleRateThrottle

from retention_crm.api.models import ApiKey


class PerKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
