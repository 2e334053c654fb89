"""HTML email (SPEC §4.2): a rendered ``body_html`` put into the shop's base layout, its links made
click redirects, its CSS inlined (mail clients drop ``<style>``), and a plain-text version.

The layout is rendered once per batch (``LayoutParts``) with markers where each message's own
parts go; a message then only joins strings, rewrites its links and runs the inliner.
"""

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

import css_inline
from django.template.loader import render_to_string

from campaigns.content.models import EmailLayout

LAYOUT_TEMPLATE = "campaigns/email/layout.html"
# Markers in the rendered layout where a message's parts go: private-use characters, which no
# escaped staff text or URL can contain.
MARKERS = ("subject", "body", "unsubscribe_url", "preferences_url", "open_pixel")
_MARKER = "\ue000{}\ue001"
_MARKER_SPLIT = re.compile("\ue000([a-z_]+)\ue001")

# Remote stylesheets are never fetched: a template must not make a worker reach out to an address.
INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

# An <a> tag's href, quoted or not. A regular expression rather than a parser: the body is markup
# we rendered a moment ago, and this runs for every message sent. No part may cross a "<", so the
# search stays linear in the body's length whatever the markup (an unclosed tag included).
_HREF = re.compile(r"""(<a\b[^<>]*?\bhref\s*=\s*)(?:"([^"<]*)"|'([^'<]*)'|([^\s"'<>]+))""", re.IGNORECASE)


def email_layout_get() -> EmailLayout:
    layout, _ = EmailLayout.objects.get_or_create(pk=EmailLayout.SINGLETON_ID)
    return layout


@dataclass(frozen=True)
class LayoutParts:
    """The rendered layout cut at its markers: literal text and the names of the parts between."""

    pieces: tuple[tuple[bool, str], ...]  # (is a marker, text or marker name)
    track_opens: bool

    @classmethod
    def of(cls, layout: EmailLayout) -> "LayoutParts":
        markers = {name: _MARKER.format(name) for name in MARKERS}
        rendered = render_to_string(LAYOUT_TEMPLATE, {"layout": layout, **markers})
        pieces = []
        for position, text in enumerate(_MARKER_SPLIT.split(rendered)):
            if text:
                pieces.append((position % 2 == 1, text))
        return cls(pieces=tuple(pieces), track_opens=layout.track_opens)

    def fill(self, parts: dict[str, str]) -> str:
        return "".join(parts[text] if marker else text for marker, text in self.pieces)


def links_rewritten(fragment: str, rewrite: Callable[[str], str | None]) -> str:
    """Every ``<a href>`` through ``rewrite`` (the unescaped address in, a new one or None out)."""

    def replace(match: re.Match) -> str:
        raw = next(group for group in match.groups()[1:] if group is not None)
        new = rewrite(html.unescape(raw).strip())
        return match.group(0) if new is None else f'{match.group(1)}"{html.escape(new)}"'

    return _HREF.sub(replace, fragment)


def open_pixel(url: str) -> str:
    return f'<img src="{html.escape(url)}" width="1" height="1" alt="" style="display:block;border:0">'


def email_html(
    parts: LayoutParts,
    *,
    fragment: str,
    subject: str,
    unsubscribe_url: str,
    preferences_url: str,
    open_pixel_url: str = "",
) -> str:
    """The full email document for a rendered (and link-rewritten) body, CSS inlined."""
    document = parts.fill(
        {
            "subject": html.escape(subject),
            "body": fragment,
            "unsubscribe_url": html.escape(unsubscribe_url),
            "preferences_url": html.escape(preferences_url),
            "open_pixel": open_pixel(open_pixel_url) if open_pixel_url else "",
        }
    )
    return INLINER.inline(document)


# --- A text version made from HTML ------------------------------------------------------------------

_INVISIBLE = re.compile(r"<(style|script|head|title)\b|<!--", re.IGNORECASE)
# A link's text runs up to its </a>, never past another <a or </a: an unclosed tag cannot make
# the search go back over the rest of the body (linear, whatever the markup).
_LINK = re.compile(
    r"""<a\b[^<>]*?\bhref\s*=\s*(?:"([^"<]*)"|'([^'<]*)'|([^\s"'<>]+))[^<>]*>"""
    r"""([^<]*(?:<(?!/?a\b)[^<]*)*)</a\s*>""",
    re.IGNORECASE,
)
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_BLOCK = re.compile(r"</?(?:p|div|table|tr|h[1-6]|ul|ol|blockquote|section)\b[^<>]*>", re.IGNORECASE)
_ITEM = re.compile(r"<li\b[^<>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]*>")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def _without_invisible(fragment: str) -> str:
    """The fragment without style sheets, scripts, head, title and comments: one pass, each block
    cut from its start to its end (or to the end of the text, if it never ends)."""
    lowered = fragment.lower()
    kept, position = [], 0
    while match := _INVISIBLE.search(fragment, position):
        kept.append(fragment[position : match.start()])
        closing = "-->" if match.group(0) == "<!--" else f"</{match.group(1).lower()}"
        end = lowered.find(closing, match.end())
        if end < 0:
            return "".join(kept)
        position = lowered.find(">", end) + 1 or len(fragment)
    kept.append(fragment[position:])
    return "".join(kept)


def _link_text(match: re.Match) -> str:
    href = html.unescape(next(group for group in match.groups()[:3] if group is not None)).strip()
    text = _TAG.sub("", match.group(4))
    shown = html.unescape(text).strip()
    if not href.startswith(("http://", "https://", "mailto:")) or href == shown:
        return text
    return f"{text} ({html.escape(href)})" if shown else html.escape(href)


def html_to_text(fragment: str) -> str:
    """A readable plain-text version of an HTML body: paragraphs kept, links written out.

    Regular expressions rather than a parser: the input is the body we just rendered, and this runs
    for every message of a campaign without a text body (a parser costs several times as much).
    """
    text = _without_invisible(fragment)
    text = _LINK.sub(_link_text, text)
    text = _ITEM.sub("\n- ", _BLOCK.sub("\n\n", _BREAK.sub("\n", text.replace("\n", " "))))
    text = html.unescape(_TAG.sub("", text))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
