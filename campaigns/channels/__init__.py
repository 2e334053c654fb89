"""Channel backends, chosen per channel by settings (``CAMPAIGN_CHANNELS``, from the environment),
or else the channel's ``default_backend`` in ``campaigns.channels.registry``.

``email`` uses Django's email backend (``EMAIL_URL`` / ``EMAIL_BACKEND``). ``sms``, ``push`` and
``webhook`` use ``http`` when their ``<CHANNEL>_URL`` is set and ``console`` otherwise; ``telegram``
uses the Bot API (``TELEGRAM_*`` settings); ``file`` and ``locmem`` serve development and tests; a
dotted path names any other ``ChannelBackend``.
"""

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from campaigns.channels.base import ChannelBackend, Outgoing, PermanentError, TransientError
from campaigns.channels.registry import CHANNELS

BACKENDS = {
    "email": "campaigns.channels.email.EmailChannel",
    "http": "campaigns.channels.http.HttpChannel",
    "telegram": "campaigns.channels.telegram.TelegramChannel",
    "console": "campaigns.channels.development.ConsoleChannel",
    "file": "campaigns.channels.development.FileChannel",
    "locmem": "campaigns.channels.development.LocmemChannel",
}


def backend_for(channel: str) -> ChannelBackend:
    """A fresh backend for ``channel``; raises PermanentError if it is not configured properly."""
    config: dict[str, Any] = dict(settings.CAMPAIGN_CHANNELS.get(channel) or {})
    definition = CHANNELS.get(channel)
    name = config.pop("BACKEND", definition.default_backend if definition else "console")
    path = BACKENDS.get(name, name)
    try:
        backend_class = import_string(path)
    except ImportError as error:
        raise PermanentError(f"unknown backend {name!r} for channel {channel}") from error
    return backend_class(**{key.lower(): value for key, value in config.items()})


__all__ = ["BACKENDS", "ChannelBackend", "Outgoing", "PermanentError", "TransientError", "backend_for"]
