"""The tags and filters campaign templates may use (SPEC §8).

Tags: Django's defaults minus anything that reaches outside the context given (no ``load``,
``include``, ``extends``, ``url``, ``debug``, ``csrf_token``). Filters: an allow-list of the text and
number filters a marketing text needs, each wrapped so that its numeric argument is capped and no
value it returns is longer than a body may be. Left out: filters with a format width
(``stringformat``), costly parsers or regular expressions (``urlize``, ``urlizetrunc``, the
``*_html`` truncators), recursion (``unordered_list``) and debugging aids (``pprint``).

Registered as the only builtin library of the campaigns' template engine (``campaigns.templating``),
which adds the time and output budget of a whole render.
"""

import functools
import re
from collections.abc import Callable
from typing import Any

from django.template import Library, defaultfilters, defaulttags

MAX_VALUE_LENGTH = 512 * 1024  # no filter returns more than a body may hold (templating.MAX_BODY_OUTPUT)
MAX_WIDTH = 1_000  # ljust, rjust, center, wordwrap
MAX_COUNT = 100_000  # truncatechars, truncatewords
MAX_DECIMALS = 20  # floatformat


class BudgetExceeded(Exception):
    """A template went over its render budget: time, output, nesting or a filter argument."""


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

# Filter name -> the cap of its numeric argument (None: it takes none, or one that cannot amplify).
ALLOWED_FILTERS: dict[str, int | None] = {
    "add": None,
    "addslashes": None,
    "capfirst": None,
    "center": MAX_WIDTH,
    "cut": None,
    "date": None,
    "default": None,
    "default_if_none": None,
    "dictsort": None,
    "dictsortreversed": None,
    "divisibleby": None,
    "escape": None,
    "filesizeformat": None,
    "first": None,
    "floatformat": MAX_DECIMALS,
    "force_escape": None,
    "get_digit": None,
    "iriencode": None,
    "join": None,
    "last": None,
    "length": None,
    "linebreaks": None,
    "linebreaksbr": None,
    "ljust": MAX_WIDTH,
    "lower": None,
    "make_list": None,
    "pluralize": None,
    "rjust": MAX_WIDTH,
    "safe": None,
    "slice": None,
    "slugify": None,
    "striptags": None,
    "time": None,
    "timesince": None,
    "timeuntil": None,
    "title": None,
    "truncatechars": MAX_COUNT,
    "truncatewords": MAX_COUNT,
    "upper": None,
    "urlencode": None,
    "wordcount": None,
    "wordwrap": MAX_WIDTH,
    "yesno": None,
}

_NUMBER = re.compile(r"\s*[+-]?\d+\s*")


def _check_argument(name: str, arg: Any, cap: int) -> None:
    text = str(arg)
    if name == "floatformat":
        text = text.rstrip("gu")  # "2g", "-3u": the digits are the precision
    if _NUMBER.fullmatch(text) and abs(int(text)) > cap:
        raise BudgetExceeded(f"{name}: the argument must be at most {cap}")


def _check_length(name: str, result: Any) -> None:
    if isinstance(result, str | list | tuple) and len(result) > MAX_VALUE_LENGTH:
        raise BudgetExceeded(f"{name}: the result is longer than {MAX_VALUE_LENGTH} characters")


def _budgeted(name: str, func: Callable[..., Any], cap: int | None) -> Callable[..., Any]:
    # functools.wraps keeps the flags Django reads (is_safe, needs_autoescape, expects_localtime)
    # and __wrapped__, through which the parser checks the number of arguments.
    @functools.wraps(func)
    def budgeted(value: Any, *args: Any, **kwargs: Any) -> Any:
        if cap is not None and args:
            _check_argument(name, args[0], cap)
        if name == "join" and args and hasattr(value, "__len__") and len(str(args[0])) * len(value) > MAX_VALUE_LENGTH:
            # The separator repeats once per item: refuse before building the string.
            raise BudgetExceeded(f"join: the result would be longer than {MAX_VALUE_LENGTH} characters")
        result = func(value, *args, **kwargs)
        _check_length(name, result)
        return result

    return budgeted


register = Library()
for _name in ALLOWED_TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]
for _name, _cap in ALLOWED_FILTERS.items():
    register.filters[_name] = _budgeted(_name, defaultfilters.register.filters[_name], _cap)
