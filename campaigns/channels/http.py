"""SMS, push and webhook (messenger bot) delivery over HTTP: one JSON POST per message.

Each request carries ``Idempotency-Key: <message uuid>``. A provider that honours it turns a
repeat of the same message (a retry after a timeout, or a re-send after a worker died between the
provider's answer and our record of it) into one delivery.

The body is ``Outgoing.payload()``: ``id``, ``channel``, ``to``, ``customer``, ``subject``, ``body``,
``campaign``, ``unsubscribe_url`` and ``preferences_url`` (the message's preference-centre link, which
push and webhook messages carry only there: their text is left as the template wrote it).

Configuration per channel, from the environment (see settings and README): ``<CHANNEL>_URL``, an
optional ``<CHANNEL>_TOKEN`` sent as ``Authorization: Bearer <token>``, ``<CHANNEL>_TIMEOUT``.

Answers: 2xx sent (the provider's ``id`` or ``message_id`` from a JSON body is kept); 408, 425,
429 and 5xx, timeouts and network errors are transient; any other answer is permanent.
"""

import http.client
import json
import ssl
from urllib.parse import urlsplit

from campaigns.channels.base import ChannelBackend, Outgoing, PermanentError, TransientError

TRANSIENT_STATUSES = {408, 425, 429}
MAX_ERROR_BODY = 500
USER_AGENT = "retention_crm-campaigns/1"


class HttpChannel(ChannelBackend):
    def __init__(self, *, url: str = "", token: str = "", timeout: float = 10.0, **options: object) -> None:
        if not url:
            raise PermanentError("no endpoint URL is configured for this channel")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PermanentError(f"the channel's URL must be http(s)://host/path, not {url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.token = token
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def open(self) -> None:
        if self.scheme == "https":
            self.connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST ``body`` to the channel's path over the kept-alive connection: (status, content).
        A network failure is transient."""
        if self.connection is None:
            self.open()
        connection = self.connection
        assert connection is not None  # open() sets it
        try:
            connection.request("POST", self.path, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
        except (TimeoutError, OSError, http.client.HTTPException) as error:
            self.close()  # the connection's state is unknown: start afresh
            raise TransientError(f"{self.host}: {error!r}") from error
        if response.will_close:
            self.close()
        return response.status, content

    def send(self, message: Outgoing) -> str:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.uuid,
            "User-Agent": USER_AGENT,
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        status, content = self.post(json.dumps(message.payload()).encode(), headers)
        if 200 <= status < 300:
            return _provider_id(content)
        detail = f"HTTP {status}: {content[:MAX_ERROR_BODY].decode(errors='replace')}"
        if status in TRANSIENT_STATUSES or status >= 500:
            raise TransientError(detail)
        raise PermanentError(detail)


def _provider_id(content: bytes) -> str:
    try:
        answer = json.loads(content or b"{}")
    except ValueError:
        return ""
    if isinstance(answer, dict):
        for key in ("id", "message_id", "sid"):
            if isinstance(answer.get(key), str | int):
                return str(answer[key])[:255]
    return ""
