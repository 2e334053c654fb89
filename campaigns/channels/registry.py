"""Every channel, defined once: where its address lives, its consent, how the address is masked,
and the backend it uses unless settings name another (SPEC §4.2).

Everything that depends on the channel reads it from here rather than branching on its name:

- evaluation and advancing: ``address_sql`` (a customer has an address for the channel);
- sending: ``address_of`` (the ``to`` of an outgoing message), ``address_fields`` (the customer
  columns a batch loads) and ``addressed_case_sql`` (the send-time check for a batch of mixed channels);
- sending and the editor's preview: ``preferences_link`` (how a message carries its link to the
  preference centre);
- the unsubscribe page: ``mask`` (the address shown back, never in full);
- the customer admin: ``consent_field`` and ``consent_label`` (one checkbox per channel);
- erasure: ``personal_address_fields`` (addresses that are personal data and are cleared);
- ``campaigns.channels.backend_for``: ``default_backend``.

Adding a channel is one ``ChannelDefinition`` below, its backend in ``campaigns/channels/``, its
``customers.models.Channel`` choice (a test keeps the two equal) and a migration for the choice.

Consent is the customer's ``customers_consent`` row for the definition's ``key``: every channel's
consent is kept alike (current state plus history), so a definition names no consent rule of its own.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


def mask_email(address: str) -> str:
    """``a***@example.com``: enough for the customer to recognise the address, not to read it."""
    if "@" not in address:
        return mask_tail(address)
    name, domain = address.split("@", 1)
    return f"{name[:1]}***@{domain}"


def mask_tail(address: str) -> str:
    """``***958``: the last three characters of a phone number, an id or a chat id."""
    return f"***{address[-3:]}" if address else ""


class PreferencesLink(StrEnum):
    """How a message of the channel carries its preference-centre link (SPEC §4.2: every message)
    when its template does not write ``preferences_url`` itself."""

    # The text part's footer, with the unsubscribe link (email: the HTML layout has its own footer).
    FOOTER = "footer"
    # "Preferences: <url>" as the text's last line (SMS, Telegram: the text is all the customer sees).
    LAST_LINE = "last_line"
    # The text is left alone; the provider gets the link as the message's ``preferences_url`` field
    # (push, webhook: the shop's app or bot shows it its own way).
    FIELD = "field"


@dataclass(frozen=True)
class ChannelDefinition:
    key: str  # the value stored in consents and messages, and the ``customers.models.Channel`` choice
    label: str
    address_field: str  # the customer column that holds the channel's address
    mask: Callable[[str], str]
    default_backend: str  # a name in ``campaigns.channels.BACKENDS`` or a dotted path
    preferences_link: PreferencesLink
    # The column can never be empty (the external id): no address check is needed.
    always_addressed: bool = False

    @property
    def consent_field(self) -> str:
        """The admin form's checkbox for this channel's consent."""
        return f"consent_{self.key}"

    @property
    def consent_label(self) -> str:
        return f"{self.label} consent"

    def address_sql(self, customer: str = "c") -> str:
        """SQL that holds when the customer (alias ``customer``) has an address for this channel."""
        return "TRUE" if self.always_addressed else f"{customer}.{self.address_field} <> ''"

    def address_of(self, customer: Mapping[str, Any] | Any) -> str:
        """The address of a customer given as a mapping of columns (a batch row) or a model instance."""
        if isinstance(customer, Mapping):
            return customer[self.address_field] or ""
        return getattr(customer, self.address_field) or ""

    def masked_address_of(self, customer: Mapping[str, Any] | Any) -> str:
        return self.mask(self.address_of(customer))


CHANNELS: dict[str, ChannelDefinition] = {
    definition.key: definition
    for definition in (
        ChannelDefinition(
            "email",
            "Email",
            address_field="email",
            mask=mask_email,
            default_backend="email",
            preferences_link=PreferencesLink.FOOTER,
        ),
        ChannelDefinition(
            "sms",
            "SMS",
            address_field="phone",
            mask=mask_tail,
            default_backend="console",
            preferences_link=PreferencesLink.LAST_LINE,
        ),
        # Push and webhook providers know the customer by the shop's own id (they hold the device
        # tokens or the bot's chats themselves).
        ChannelDefinition(
            "push",
            "Push",
            address_field="external_id",
            mask=mask_tail,
            default_backend="console",
            preferences_link=PreferencesLink.FIELD,
            always_addressed=True,
        ),
        ChannelDefinition(
            "webhook",
            "Webhook",
            address_field="external_id",
            mask=mask_tail,
            default_backend="console",
            preferences_link=PreferencesLink.FIELD,
            always_addressed=True,
        ),
        ChannelDefinition(
            "telegram",
            "Telegram",
            address_field="telegram_chat_id",
            mask=mask_tail,
            default_backend="telegram",
            preferences_link=PreferencesLink.LAST_LINE,
        ),
    )
}


def channel_definition(channel: str) -> ChannelDefinition:
    """The definition of ``channel``; KeyError for a name that is not a channel."""
    return CHANNELS[channel]


def channel_keys() -> list[str]:
    return list(CHANNELS)


def address_sql(channel: str, customer: str = "c") -> str:
    return channel_definition(channel).address_sql(customer)


def addressed_case_sql(*, channel_column: str, customer: str = "c") -> str:
    """One expression for rows of mixed channels: does the row's customer have its channel's address?"""
    cases = " ".join(
        f"WHEN '{definition.key}' THEN {definition.address_sql(customer)}"
        for definition in CHANNELS.values()
        if not definition.always_addressed
    )
    return f"CASE {channel_column} {cases} ELSE TRUE END"


def address_of(channel: str, customer: Mapping[str, Any] | Any) -> str:
    return channel_definition(channel).address_of(customer)


def address_fields() -> list[str]:
    """The customer columns that hold some channel's address, each once."""
    return list(dict.fromkeys(definition.address_field for definition in CHANNELS.values()))


def personal_address_fields() -> list[str]:
    """Address columns that are personal data (all but the shop's own external id): erasure clears them."""
    return [field for field in address_fields() if field != "external_id"]
