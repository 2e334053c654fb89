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
    """Try again later."""


class PermanentError(Exception):
    """The provider refused this message; trying again will not help."""


@dataclass(frozen=True)
class Outgoing:
    uuid: str
    channel: str
    to: str  # email address, E.164 phone number, or the customer's external id (push, webhook)
    customer: str  # the customer's external id
    subject: str
    body: str
    unsubscribe_url: str
    campaign_id: int

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
        }


class ChannelBackend(ABC):
    # Whether the sender must record each message's outcome before the next send. True for real
    # providers: a worker dying mid-batch can then leave at most one message sent-but-unrecorded
    # (the duplicate window, closed by the provider honouring the idempotency key). In-process
    # development backends record the whole batch at once, which is much faster.
    confirm_each: bool = True

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
