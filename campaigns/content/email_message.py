"""The email a message becomes: text only, or multipart/alternative with an HTML part (SPEC §4.2).

Every email carries ``Message-ID: <uuid@domain>`` (the idempotency key) and the RFC 8058 one-click
unsubscribe headers (SPEC §4).
"""

from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives

from campaigns.channels.base import Outgoing


def email_headers(message: Outgoing, *, domain: str) -> dict[str, str]:
    return {
        "Message-ID": f"<{message.uuid}@{domain}>",
        "List-Unsubscribe": f"<{message.unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Campaign": str(message.campaign_id),
    }


def email_message_build(message: Outgoing, *, domain: str, connection: Any = None) -> EmailMessage:
    """The Django email for an outgoing message; with ``message.html``, the text is the plain part."""
    fields = {
        "subject": message.subject,
        "body": message.body,
        "from_email": settings.DEFAULT_FROM_EMAIL,
        "to": [message.to],
        "headers": email_headers(message, domain=domain),
        "connection": connection,
    }
    html = getattr(message, "html", "")
    if not html:
        return EmailMessage(**fields)
    email = EmailMultiAlternatives(**fields)
    email.attach_alternative(html, "text/html")
    return email
