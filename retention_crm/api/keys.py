"""Creating, checking and revoking API keys."""

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from retention_crm.api.models import ApiKey, Scope
from retention_crm.errors import ApplicationError

KEY_PREFIX_LENGTH = 8
# last_used_at is a hint for staff, not an audit trail: write it at most this often per key.
LAST_USED_RESOLUTION_SECONDS = 60


def _hash(raw_key: str) -> str:
    # Keys are 256-bit random, so a fast hash is safe here (no dictionary to attack).
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Create a key; returns the stored record and the key itself, which is never stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ApplicationError("A key needs a name of 1 to 100 characters.", fields={"name": ["required"]})
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown or not scopes:
        raise ApplicationError(
            f"Scopes must be some of {', '.join(Scope.values)}; got {', '.join(unknown) or 'none'}.",
            fields={"scopes": ["invalid"]},
        )
    while True:
        raw_key = secrets.token_urlsafe(32)
        prefix = raw_key[:KEY_PREFIX_LENGTH]
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    key = ApiKey.objects.create(name=name, prefix=prefix, key_hash=_hash(raw_key), scopes=sorted(set(scopes)))
    return key, raw_key


_ACTIVE_KEY = "SELECT * FROM api_apikey WHERE key_hash = %s AND revoked_at IS NULL"


def api_key_check(*, raw_key: str) -> ApiKey | None:
    """The active key matching ``raw_key``, or None. Marks it used."""
    # Every API request runs this: a plain statement, not a queryset compiled each time.
    key = next(iter(ApiKey.objects.raw(_ACTIVE_KEY, [_hash(raw_key)])), None)
    if key is None:
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
