"""The editor's previews (SPEC §4.2): the HTML body rendered into the shop's layout exactly as it
will be sent, except that links keep their own addresses (nothing is tracked in a preview), and the
text body of an SMS or Telegram message with the preference-centre line the sender adds."""

import functools
import uuid
from typing import Any

from campaigns.channels.registry import PreferencesLink
from campaigns.content.html_email import LayoutParts, email_html, email_layout_get, html_to_text
from campaigns.content.links import LinkMaker
from campaigns.content.rendering import nps_links_html, preferences_line, text_addition
from campaigns.templating import render, template_compile, template_error

PREVIEW_MESSAGE_UUID = str(uuid.UUID(int=0))  # signs the sample NPS links; no message has it


def html_preview(*, source: str, context: dict[str, Any], tz: str, subject: str, field: str) -> tuple[str, str]:
    """The full HTML document for ``source`` (a body_html template) and the text version a send
    would make of it; ("", "") without one. Raises ApplicationError naming ``field``."""
    if not source:
        return "", ""
    template = template_compile(source, field)
    links = LinkMaker()
    html_context = {**context, "nps_links": functools.partial(nps_links_html, links, PREVIEW_MESSAGE_UUID)}
    try:
        fragment = render(template, html_context, tz, autoescape=True)
    except Exception as error:  # over budget, or a filter failing on this customer's data
        raise template_error(field, error) from None
    document = email_html(
        LayoutParts.of(email_layout_get()),
        fragment=fragment,
        subject=subject,
        unsubscribe_url=context["unsubscribe_url"],
        preferences_url=context.get("preferences_url") or links.preferences_url(PREVIEW_MESSAGE_UUID),
    )
    return document, html_to_text(fragment)


def text_preview(*, channel: str, source: str, text: str, preferences_url: str) -> str:
    """The rendered ``text`` of a body template ``source`` as a message on ``channel`` carries it:
    SMS and Telegram with the last line the sender adds (``text_addition``). An email's text footer
    is left out (the HTML preview shows the layout's footer), and push and webhook text is as written."""
    if text_addition(channel, source) == PreferencesLink.LAST_LINE:
        return preferences_line(text, preferences_url)
    return text
