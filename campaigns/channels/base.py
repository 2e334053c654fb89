"""The one small interface every channel backend implements.

A backend is opened once per batch (``with backend:``), then ``send`` is called per message. It
returns the provider's id for the message (or "") and raises ``TransientError`` when trying again
later may work (network, timeouts, HTTP 429 and 5xx, SMTP 4xx) or ``PermanentError`` when it will
not (the provider refused this message). Anything else raised counts as transient: the sender
retries it a bounded number of times.

Every message carries its UUID, which the backend hands to the provider as the idempotency key.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType


class TransientError(Exception):
    """Try again later: after ``retry_after`` seconds when the provider said so (HTTP 429), else
    after the sender's own backoff."""

    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


class PermanentError(Exception):
    """The provider refused this message; trying again will not help.

    ``revoke_consent``: the recipient turned the channel off at the provider (e.g. blocked the bot),
    so the sender revokes the customer's consent for the channel, as a hard bounce does for email.
    """

    def __init__(self, *args: object, revoke_consent: bool = False) -> None:
        super().__init__(*args)
        self.revoke_consent = revoke_consent


@dataclass(frozen=True)
class Outgoing:
    uuid: str
    channel: str
    to: str  # the channel's address (campaigns.channels.registry): email, phone, external id, chat id
    customer: str  # the customer's external id
    subject: str
    body: str
    unsubscribe_url: str
    campaign_id: int
    html: str = ""  # email: the HTML part in the shop's layout (campaigns.content); "" sends text only
    # The message's signed preference-centre link. Push and webhook carry it only here (their
    # ``preferences_link`` in campaigns.channels.registry); SMS and Telegram also in the text.
    preferences_url: str = ""

    def payload(self) -> dict[str, object]:
        """The JSON body HTTP and development backends send or record."""
        return {
            "id": self.uuid,
            "channel": self.channel,
            "to": self.to,
            "customer": self.customer,
            "subject": self.subject,
            "body": self.body,
            "campaign": self.campaign_id,
            "unsubscribe_url": self.unsubscribe_url,
            "preferences_url": self.preferences_url,
        }


class ChannelBackend(ABC):
    # Whether the sender must confirm each sent message (its receipt, campaigns.services.send_receipts)
    # before the next send. True for real providers: a worker dying mid-batch can then leave at most
    # one message sent-but-unconfirmed per connection (the duplicate window, closed by the provider
    # honouring the idempotency key). In-process development backends record the batch at once.
    confirm_each: bool = True
    # How many connections to the provider one batch may use at once (campaigns.channels.lanes),
    # each confirming its own sends; the duplicate window is then one message per connection.
    connections: int = 1

    def open(self) -> None:  # noqa: B027 - an optional hook; most backends need no set-up
        """Open connections for a batch."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Close them."""

    @abstractmethod
    def send(self, message: Outgoing) -> str:
        """Each subclass implements this."""

    def __enter__(self) -> "ChannelBackend":
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
