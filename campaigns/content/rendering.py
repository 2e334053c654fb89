"""What the sender asks of this package for each message (SPEC §4.2): the variables every template
gets (``preferences_url``, ``nps_links``), the preference-centre link each channel's text carries
(``text_addition``, ``text_as_sent``), and an email's HTML part and plain part.

``MessageContent`` lives for one batch: the layout, the link maker and each step's compiled HTML
template are made once and reused for every message of the batch.
"""

import functools
from dataclasses import dataclass, field
from typing import Any

from django.template import Template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from campaigns.channels.registry import PreferencesLink, channel_definition
from campaigns.content.html_email import LayoutParts, email_html, email_layout_get, html_to_text, links_rewritten
from campaigns.content.links import NPS_SCORES, LinkMaker
from campaigns.templating import render, template_compile, uses
from retention_crm.errors import ApplicationError


def nps_links_text(links: LinkMaker, message_uuid: str) -> str:
    return "\n".join(f"{score}: {links.nps_url(message_uuid, score)}" for score in NPS_SCORES)


def nps_links_html(links: LinkMaker, message_uuid: str) -> SafeString:
    cells = format_html_join(
        "",
        '<a class="nps-score" href="{}">{}</a>',
        ((links.nps_url(message_uuid, score), score) for score in NPS_SCORES),
    )
    return format_html(
        '<div class="nps-links">{}<br><small>0: not at all likely &middot; 10: extremely likely</small></div>', cells
    )


@dataclass
class MessageContent:
    """Per batch: the shop's layout, the links, and each (step, variant)'s compiled HTML template."""

    links: LinkMaker = field(default_factory=LinkMaker)
    layout_parts: LayoutParts | None = None  # read from the database on the first HTML email
    _html: dict[tuple[str, str], Template | ApplicationError] = field(default_factory=dict)

    @property
    def layout(self) -> LayoutParts:
        if self.layout_parts is None:
            self.layout_parts = LayoutParts.of(email_layout_get())
        return self.layout_parts

    def html_template(self, key: tuple[str, str], source: str) -> Template:
        if key not in self._html:
            try:
                self._html[key] = template_compile(source, "body_html")
            except ApplicationError as error:
                self._html[key] = error
        compiled = self._html[key]
        if isinstance(compiled, ApplicationError):
            raise compiled
        return compiled


def message_variables(content: MessageContent, message_uuid: str) -> dict[str, Any]:
    """Added to every message's context. ``nps_links`` is a callable: the template engine calls it
    only if a template shows it, so messages without a survey sign nothing."""
    links = content.links
    return {
        "preferences_url": links.preferences_url(message_uuid),
        "nps_links": functools.partial(nps_links_text, links, message_uuid),
    }


def text_footer(text: str, *, unsubscribe_url: str, preferences_url: str) -> str:
    """The plain part's footer, for a body that does not show the unsubscribe link itself."""
    return f"{text.rstrip()}\n\nPreferences: {preferences_url}\nUnsubscribe: {unsubscribe_url}\n"


# A body that mentions the variable already carries what the sender would add to its text.
SHOWN_BY = {PreferencesLink.FOOTER: "unsubscribe_url", PreferencesLink.LAST_LINE: "preferences_url"}


def preferences_line(text: str, preferences_url: str) -> str:
    """``text`` ending in a short line with the preference-centre link (SMS, Telegram)."""
    line = f"Preferences: {preferences_url}"
    return f"{text.rstrip()}\n\n{line}" if text.strip() else line


def text_addition(channel: str, body_source: str) -> PreferencesLink | None:
    """What the sender adds to the text of ``channel``'s messages with this body template (its
    registry definition's ``preferences_link``), or None when the body already shows the link
    itself: email's footer unless the body shows ``unsubscribe_url``, the last line unless it shows
    ``preferences_url``. Push and webhook carry the link as a field, never in the text."""
    link = channel_definition(channel).preferences_link
    variable = SHOWN_BY.get(link)
    return link if variable and not uses(body_source, variable) else None


def text_as_sent(text: str, addition: PreferencesLink | None, *, unsubscribe_url: str, preferences_url: str) -> str:
    """The rendered text with what ``text_addition`` said to add."""
    if addition == PreferencesLink.FOOTER:
        return text_footer(text, unsubscribe_url=unsubscribe_url, preferences_url=preferences_url)
    if addition == PreferencesLink.LAST_LINE:
        return preferences_line(text, preferences_url)
    return text


def email_html_and_text(
    content: MessageContent,
    *,
    key: tuple[str, str],
    source: str,
    context: dict[str, Any],
    subject: str,
    text: str,
    tz: str,
    message_uuid: str,
) -> tuple[str, str]:
    """An email's HTML part ("" without an HTML body) and its plain part: the rendered text body,
    or a text version of the HTML when the text body is empty.

    Raises ApplicationError for a template that does not compile and BudgetExceeded over budget.
    """
    if not source:
        return "", text
    links = content.links
    html_context = {**context, "nps_links": functools.partial(nps_links_html, links, message_uuid)}
    fragment = render(content.html_template(key, source), html_context, tz, autoescape=True)
    if not text.strip():
        text = html_to_text(fragment)

    def tracked(url: str) -> str | None:
        return links.click_url(message_uuid, url) if links.trackable(url) else None

    document = email_html(
        content.layout,
        fragment=links_rewritten(fragment, tracked),
        subject=subject,
        unsubscribe_url=context["unsubscribe_url"],
        preferences_url=context["preferences_url"],
        open_pixel_url=links.open_url(message_uuid) if content.layout.track_opens else "",
    )
    return document, text
