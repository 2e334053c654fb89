"""Signed links of a message to the customer's own pages (SPEC §4.2): click redirects, the open
pixel, the preference centre and NPS answers.

Like the unsubscribe token (``campaigns.tokens``) nothing is stored: an HMAC (django.core.signing,
one salt per kind of link, so a token of one kind is refused by the others) proves we made the
link, and the message's UUID inside it finds the message, its customer and its channel. A click
token also carries the original address, so the redirect only ever goes where our own email
pointed: never an open redirect.
"""

import base64
import re
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import reverse

CLICK_SALT = "campaigns.content.click"
OPEN_SALT = "campaigns.content.open"
PREFERENCES_SALT = "campaigns.content.preferences"
NPS_SALT = "campaigns.content.nps"
NPS_SCORES = range(0, 11)
PLACEHOLDER = "TOKEN"
MAX_TRACKED_URL_LENGTH = 2_000  # longer addresses are left as they are (mail clients cut long links)


# Control characters and spaces: such an address cannot go into a Location header as it is.
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


class InvalidLink(Exception):
    """A link that was tampered with, is malformed, or is of another kind."""


def _signer(salt: str) -> signing.Signer:
    return signing.Signer(salt=salt)


def _prefix(name: str) -> str:
    return settings.SITE_URL + reverse(name, kwargs={"token": PLACEHOLDER}).removesuffix(PLACEHOLDER)


class LinkMaker:
    """Makes a message's links; the URL prefixes are reversed once (per batch), not per message."""

    def __init__(self) -> None:
        self.click_prefix = _prefix("content-click")
        self.open_prefix = _prefix("content-open")
        self.preferences_prefix = _prefix("content-preferences")
        self.nps_prefix = _prefix("content-nps")
        # Links to our own customer pages are not wrapped in click redirects.
        self.own_pages = (
            settings.SITE_URL + "/unsubscribe/",
            self.preferences_prefix,
            self.nps_prefix,
            self.click_prefix,
        )
        self._signers = {salt: _signer(salt) for salt in (CLICK_SALT, OPEN_SALT, PREFERENCES_SALT, NPS_SALT)}

    def click_url(self, message_uuid: str, url: str) -> str:
        # "<uuid hex>.<address, base64url>" signed: plain signing is a third of sign_object's cost
        # (no JSON, no zlib), and this runs for every link of every message.
        address = base64.urlsafe_b64encode(url.encode()).rstrip(b"=").decode()
        return self.click_prefix + self._signers[CLICK_SALT].sign(f"{uuid.UUID(message_uuid).hex}.{address}")

    def open_url(self, message_uuid: str) -> str:
        return self.open_prefix + self._signers[OPEN_SALT].sign(uuid.UUID(message_uuid).hex)

    def preferences_url(self, message_uuid: str) -> str:
        return self.preferences_prefix + self._signers[PREFERENCES_SALT].sign(uuid.UUID(message_uuid).hex)

    def nps_url(self, message_uuid: str, score: int) -> str:
        return self.nps_prefix + self._signers[NPS_SALT].sign(f"{uuid.UUID(message_uuid).hex}-{score}")

    def trackable(self, url: str) -> bool:
        """Whether a link in an email becomes a click redirect: a web address, not one of ours."""
        if len(url) > MAX_TRACKED_URL_LENGTH or url.startswith(self.own_pages) or _UNSAFE.search(url):
            return False
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.netloc)


def _uuid(hex_text: object) -> uuid.UUID:
    if not isinstance(hex_text, str) or len(hex_text) != 32:
        raise InvalidLink("malformed")
    try:
        return uuid.UUID(hex=hex_text)
    except ValueError:
        raise InvalidLink("malformed") from None


def click_read(token: str) -> tuple[uuid.UUID, str]:
    """The message and the original address a click token names; raises InvalidLink."""
    hex_text, _, address = _read_simple(token, CLICK_SALT).partition(".")
    try:
        url = base64.urlsafe_b64decode(address + "=" * (-len(address) % 4)).decode()
    except (ValueError, UnicodeError):
        raise InvalidLink("malformed") from None
    parts = urlsplit(url)
    if _UNSAFE.search(url):  # a header cannot carry it
        raise InvalidLink("not a web address")
    # Signed by us, so always one of our email's web addresses; checked again all the same.
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidLink("not a web address")
    return _uuid(hex_text), url


def _read_simple(token: str, salt: str) -> str:
    try:
        return _signer(salt).unsign(token)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError):
        raise InvalidLink("bad signature") from None


def open_read(token: str) -> uuid.UUID:
    return _uuid(_read_simple(token, OPEN_SALT))


def preferences_read(token: str) -> uuid.UUID:
    return _uuid(_read_simple(token, PREFERENCES_SALT))


def nps_read(token: str) -> tuple[uuid.UUID, int]:
    """The message and the score an NPS link names; raises InvalidLink."""
    hex_text, _, score = _read_simple(token, NPS_SALT).partition("-")
    if not score.isdigit() or int(score) not in NPS_SCORES:
        raise InvalidLink("malformed")
    return _uuid(hex_text), int(score)
