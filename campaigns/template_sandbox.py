"""The tags and filters campaign templates may use: Django's defaults minus anything that reaches
outside the context given (no ``load``, ``include``, ``extends``, ``url``, ``debug``, ``csrf_token``).

Registered as the only builtin library of the campaigns' template engine (``campaigns.templating``).
"""

from django.template import Library, defaultfilters, defaulttags

ALLOWED_TAGS = (
    "autoescape",
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
)

register = Library()
for _name in ALLOWED_TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]
register.filters.update(defaultfilters.register.filters)
