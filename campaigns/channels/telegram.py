"""Telegram through the Bot API: ``POST {TELEGRAM_API_URL}/bot{TELEGRAM_BOT_TOKEN}/sendMessage`` with
``{"chat_id", "text"}`` for each message, over one kept-alive connection per batch.

The Bot API answers ``{"ok": true, "result": {"message_id": ...}}`` or
``{"ok": false, "error_code": ..., "description": ..., "parameters": {"retry_after": ...}}``:

- 429: transient, retried after the ``retry_after`` seconds the API asks for; until then the rest of
  the batch is not sent either (each message goes back to the queue for that long);
- 5xx, timeouts and network errors: transient, with the sender's backoff; so are 401 and 404 (a
  wrong token or API address: our configuration, not the message);
- 403 "bot was blocked by the user" (or a deleted account): permanent, and the customer's telegram
  consent is revoked, as a hard bounce revokes email;
- any other 4xx (``chat not found``, a text too long): permanent.

The Bot API takes no idempotency key: like SMTP, the duplicate window when a worker dies is the one
message sent and not yet recorded (the sender records each outcome before the next send).
The token is part of the URL path, so it never appears in an error kept on a message.
"""

import json
import time

from django.conf import settings

from campaigns.channels.base import Outgoing, PermanentError, TransientError
from campaigns.channels.http import MAX_ERROR_BODY, USER_AGENT, HttpChannel

# 401 (a wrong or revoked bot token) and 404 (a wrong API address) mean our configuration is wrong,
# not the message: retried within the sender's bounded attempts, like an SMTP login failure.
CONFIGURATION_STATUSES = {401, 404}
MAX_TEXT_LENGTH = 4_096  # the Bot API's limit for one message's text
# 403 descriptions meaning the person turned the bot off for good.
GONE_DESCRIPTIONS = ("bot was blocked by the user", "user is deactivated")


class TelegramChannel(HttpChannel):
    def __init__(self, *, token: str = "", api_url: str = "", timeout: float = 10.0, **options: object) -> None:
        token = token or settings.TELEGRAM_BOT_TOKEN
        if not token:
            raise PermanentError("TELEGRAM_BOT_TOKEN is not set")
        api_url = (api_url or settings.TELEGRAM_API_URL).rstrip("/")
        super().__init__(url=f"{api_url}/bot{token}/sendMessage", timeout=timeout)
        self.token = ""  # the bot's token travels in the path, not as a bearer token
        self.paused_until = 0.0  # monotonic time before which the API asked us not to send

    def send(self, message: Outgoing) -> str:
        wait = self.paused_until - time.monotonic()
        if wait > 0:
            raise TransientError(f"Telegram asked to wait {wait:.0f} s", retry_after=wait)
        body = json.dumps({"chat_id": message.to, "text": telegram_text(message)}).encode()
        status, content = self.post(body, {"Content-Type": "application/json", "User-Agent": USER_AGENT})
        answer = _answer(content)
        if 200 <= status < 300 and answer.get("ok") is True:
            result = answer.get("result")
            return str(result.get("message_id", "")) if isinstance(result, dict) else ""
        description = str(answer.get("description") or content[:MAX_ERROR_BODY].decode(errors="replace"))
        detail = f"Telegram {status}: {description[:MAX_ERROR_BODY]}"
        if status == 429:
            retry_after = _retry_after(answer)
            if retry_after is not None:
                self.paused_until = time.monotonic() + retry_after
            raise TransientError(detail, retry_after=retry_after)
        if status >= 500 or status in CONFIGURATION_STATUSES or not 400 <= status < 500:
            raise TransientError(detail)
        if status == 403 and any(gone in description.lower() for gone in GONE_DESCRIPTIONS):
            raise PermanentError(detail, revoke_consent=True)
        raise PermanentError(detail)


def telegram_text(message: Outgoing) -> str:
    """The subject (a title, when the campaign has one) above the body, within the API's limit. A
    text cut to the limit keeps its last line whole when that line has the preference-centre link
    (the line the sender adds): every message links the preference centre (SPEC §4.2)."""
    text = (f"{message.subject}\n\n{message.body}" if message.subject else message.body).strip()
    if len(text) <= MAX_TEXT_LENGTH:
        return text
    head, newline, last = text.rpartition("\n")
    if newline and message.preferences_url and message.preferences_url in last and len(last) < MAX_TEXT_LENGTH:
        return f"{head[: MAX_TEXT_LENGTH - len(last) - 1]}\n{last}"
    return text[:MAX_TEXT_LENGTH]


def _answer(content: bytes) -> dict:
    try:
        answer = json.loads(content or b"{}")
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _retry_after(answer: dict) -> float | None:
    parameters = answer.get("parameters")
    value = parameters.get("retry_after") if isinstance(parameters, dict) else None
    return float(value) if isinstance(value, int | float) and value >= 0 else None
