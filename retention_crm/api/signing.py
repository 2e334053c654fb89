"""Signed provider callbacks (SPEC §8): HMAC-SHA256 over ``<timestamp>.<raw body>`` with the shared
secret, a timestamp within the tolerance of now, and each signature accepted once.

The provider sends::

    X-Signature-Timestamp: 1764585600                      (Unix seconds)
    X-Signature: sha256=<hex of HMAC-SHA256(secret, "1764585600." + body)>

Several ``sha256=`` values may be given, comma-separated, while the secret is being rotated.
"""

import datetime as dt
import hashlib
import hmac
import time

from django.db import IntegrityError, transaction
from django.utils import timezone

from retention_crm.api.models import SeenCallbackSignature

TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_HEADER = "X-Signature"
SCHEME = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """Why a callback's signature was refused."""


def signature_compute(*, secret: str, timestamp: str | int, body: bytes) -> str:
    """The ``X-Signature`` value a provider sends for ``body`` at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    return SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _given_signatures(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip().startswith(SCHEME)]


def signature_verify(
    *,
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """The matching signature's hex digest; raises SignatureError if the signature is missing or
    wrong, the timestamp is outside the tolerance, or this signature was accepted before."""
    if not secret:
        raise SignatureError("callbacks are not configured (no secret)")
    if not timestamp or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(f"a {TIMESTAMP_HEADER} header with Unix seconds is required")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance_seconds:
        raise SignatureError(f"the timestamp is more than {tolerance_seconds} seconds away from now")
    expected = signature_compute(secret=secret, timestamp=timestamp, body=body)
    matching = [given for given in _given_signatures(signature or "") if hmac.compare_digest(given, expected)]
    if not matching:
        raise SignatureError(f"a valid {SIGNATURE_HEADER}: {SCHEME}<hex> header is required")
    digest = expected.removeprefix(SCHEME)
    _remember(digest, tolerance_seconds=tolerance_seconds)
    return digest


def _remember(digest: str, *, tolerance_seconds: int) -> None:
    """Record the signature; a second time is a replay. Rows older than twice the tolerance can no
    longer match a fresh timestamp and are dropped on the way."""
    now = timezone.now()
    SeenCallbackSignature.objects.filter(seen_at__lt=now - dt.timedelta(seconds=2 * tolerance_seconds)).delete()
    try:
        with transaction.atomic():
            SeenCallbackSignature.objects.create(signature=digest, seen_at=now)
    except IntegrityError:
        raise SignatureError("this callback was already received (replay)") from None
