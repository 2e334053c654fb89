"""A campaign's journey (SPEC §4.1): its ordered steps, validated, and what follows each one.

Stored on the campaign as JSON (``Campaign.steps``), in the API's shape. A campaign without steps
has one implicit message step, ``message``, made of its own channel, subject, body and offer, and
behaves exactly as a single-message campaign (SPEC §4).

Step kinds, each with a stable ``key`` unique in the campaign:

- ``message``: ``channel``, ``subject``, ``body``, optional ``body_html`` (email, SPEC §4.2),
  optional ``offer``; optional ``variants`` (2-4, each ``key``, ``weight``, ``subject``, ``body``,
  ``body_html``) and ``auto_winner``;
- ``wait``: ``minutes`` (1-129,600) or ``until`` a local time of day (``"10:00"``);
- ``split``: one ``condition`` and the keys to go to when it holds (``yes``) or not (``no``),
  ``"exit"`` ending the entry;
- ``tag``: ``add`` and/or ``remove`` customer tags.

An entry that runs past the last step completes. Cycles (a split jumping back) must pass a wait,
so an entry can never spin through steps without time passing.
"""

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from campaigns.offers import offer_clean
from campaigns.templating import storable_text, templates_validate
from customers.models import Channel
from retention_crm import validation as v
from retention_crm.errors import ApplicationError

IMPLICIT_STEP_KEY = "message"
EXIT = "exit"
STEP_TYPES = ("message", "wait", "split", "tag")
MAX_STEPS = 30
STEP_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
WAIT_MINUTES_MAX = 129_600  # 90 days
VARIANTS_MIN, VARIANTS_MAX = 2, 4
VARIANT_WEIGHT_MAX = 1_000
DEFAULT_MIN_PER_VARIANT = 500
MIN_PER_VARIANT_RANGE = (10, 1_000_000)
SPLIT_CONDITIONS = (
    "purchased_since_entry",
    "clicked_previous",
    "opened_previous",
    "tier",
    "min_total_spent",
    "has_tag",
)
FLAG_CONDITIONS = ("purchased_since_entry", "clicked_previous", "opened_previous")
REENTRY_AFTER_DAYS_MAX = 3_650
TIME_OF_DAY = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class Variant:
    key: str
    weight: int
    subject: str
    body: str
    body_html: str = ""


@dataclass(frozen=True)
class Step:
    key: str
    type: str
    # message
    channel: str = ""
    subject: str = ""
    body: str = ""
    body_html: str = ""  # email only (SPEC §4.2); "" sends text only
    offer: dict[str, Any] = field(default_factory=dict)
    variants: tuple[Variant, ...] = ()
    min_per_variant: int | None = None  # set: the step picks a winner automatically
    # wait
    minutes: int | None = None
    until: dt.time | None = None
    # split
    condition: str = ""
    condition_value: Any = None
    yes: str = ""
    no: str = ""
    # tag
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    def content(self, variant_key: str) -> tuple[str, str]:
        """The subject and body templates of one of this message step's variants ('' : the step's own)."""
        for variant in self.variants:
            if variant.key == variant_key:
                return variant.subject, variant.body
        return self.subject, self.body

    def html_content(self, variant_key: str) -> str:
        """The HTML body template of one of this step's variants ('' : the step's own)."""
        for variant in self.variants:
            if variant.key == variant_key:
                return variant.body_html
        return self.body_html


@dataclass(frozen=True)
class Journey:
    steps: tuple[Step, ...]
    explicit: bool  # False: the campaign has no steps of its own (one implicit message step)

    def index(self, key: str) -> int:
        for position, step in enumerate(self.steps):
            if step.key == key:
                return position
        raise KeyError(key)

    def step(self, key: str) -> Step:
        return self.steps[self.index(key)]

    def has(self, key: str) -> bool:
        return any(step.key == key for step in self.steps)

    def following(self, key: str) -> str | None:
        """The step after ``key`` in order (None: the entry completes)."""
        position = self.index(key)
        return self.steps[position + 1].key if position + 1 < len(self.steps) else None

    def targets(self, key: str) -> list[str | None]:
        """Where an entry may go from ``key``: a split's two branches, else the next step.
        ``EXIT`` and None (past the last step) both end the entry."""
        step = self.step(key)
        if step.type == "split":
            return [step.yes, step.no]
        return [self.following(key)]

    @property
    def first(self) -> Step:
        return self.steps[0]

    def message_steps(self) -> list[Step]:
        return [step for step in self.steps if step.type == "message"]


def journey_of(campaign: Any) -> Journey:
    """The campaign's journey: its steps, or the one implicit message step made of its own fields."""
    raw = campaign.steps or []
    if raw:
        return Journey(steps=tuple(_step_from_stored(item, campaign) for item in raw), explicit=True)
    implicit = Step(
        key=IMPLICIT_STEP_KEY,
        type="message",
        channel=campaign.channel,
        subject=campaign.subject,
        body=campaign.body,
        # Read only if loaded: a campaign fetched with .only() for its texts (the 360) skips it.
        body_html=campaign.__dict__.get("body_html", ""),
        offer=dict(campaign.offer or {}),
    )
    return Journey(steps=(implicit,), explicit=False)


def _step_from_stored(item: dict[str, Any], campaign: Any) -> Step:
    kind = item["type"]
    if kind == "message":
        winner = item.get("auto_winner")
        return Step(
            key=item["key"],
            type=kind,
            channel=item.get("channel") or campaign.channel,
            subject=item.get("subject", ""),
            body=item.get("body", ""),
            body_html=item.get("body_html", ""),
            offer=dict(item.get("offer") or {}),
            variants=tuple(
                Variant(
                    key=x["key"],
                    weight=x["weight"],
                    subject=x.get("subject", ""),
                    body=x.get("body", ""),
                    body_html=x.get("body_html", ""),
                )
                for x in item.get("variants") or []
            ),
            min_per_variant=winner["min_per_variant"] if winner else None,
        )
    if kind == "wait":
        until = item.get("until")
        return Step(
            key=item["key"],
            type=kind,
            minutes=item.get("minutes"),
            until=dt.time.fromisoformat(until) if until else None,
        )
    if kind == "split":
        ((condition, condition_value),) = item["condition"].items()
        return Step(
            key=item["key"],
            type=kind,
            condition=condition,
            condition_value=condition_value,
            yes=item["yes"],
            no=item["no"],
        )
    return Step(key=item["key"], type=kind, add=tuple(item.get("add") or ()), remove=tuple(item.get("remove") or ()))


# --- Validation ------------------------------------------------------------------------------------


def _prefixed(error: ApplicationError, prefix: str) -> ApplicationError:
    """The same error, its fields named inside the step (``steps[2].body``)."""
    fields = {f"{prefix}.{name}": messages for name, messages in (error.fields or {}).items()}
    return ApplicationError(f"{prefix}.{error.message}", code=error.code, fields=fields or {prefix: [error.message]})


def _step_invalid(prefix: str, name: str, message: str) -> ApplicationError:
    return v.invalid(f"{prefix}.{name}" if name else prefix, message)


def steps_clean(raw: Any, *, channel: str) -> list[dict[str, Any]]:
    """Validate the ``steps`` list (SPEC §4.1, §6) and return it in its stored form.

    Raises ApplicationError naming the step and field (``steps[1].yes``): an unknown kind or
    field, a duplicate key, an unknown ``yes``/``no`` target, a cycle without a wait, a message
    step without a body, weights that are not positive.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise v.invalid("steps", "must be a list of steps")
    if len(raw) > MAX_STEPS:
        raise v.invalid("steps", f"at most {MAX_STEPS} steps")
    cleaned: list[dict[str, Any]] = []
    keys: set[str] = set()
    for position, item in enumerate(raw):
        prefix = f"steps[{position}]"
        if not isinstance(item, dict):
            raise v.invalid(prefix, "must be an object")
        key = item.get("key")
        if not isinstance(key, str) or not STEP_KEY_PATTERN.match(key) or key == EXIT:
            raise _step_invalid(prefix, "key", "must be 1-40 lower-case letters, digits, '-' or '_' (and not 'exit')")
        if key in keys:
            raise _step_invalid(prefix, "key", f"{key!r} is used by another step")
        keys.add(key)
        kind = item.get("type")
        if kind not in STEP_TYPES:
            raise _step_invalid(prefix, "type", f"must be one of {', '.join(STEP_TYPES)}")
        cleaner = {"message": _message_clean, "wait": _wait_clean, "split": _split_clean, "tag": _tag_clean}[kind]
        cleaned.append({"key": key, "type": kind, **cleaner(item, prefix, channel)})
    for position, item in enumerate(cleaned):
        if item["type"] == "split":
            for branch in ("yes", "no"):
                if item[branch] != EXIT and item[branch] not in keys:
                    raise _step_invalid(f"steps[{position}]", branch, f"no step with key {item[branch]!r}")
    _refuse_cycles_without_wait(cleaned)
    return cleaned


def _fields(item: dict[str, Any], prefix: str, allowed: set[str]) -> None:
    unknown = sorted(set(item) - allowed - {"key", "type"})
    if unknown:
        raise _step_invalid(prefix, unknown[0], f"unknown field for a {item['type']} step")


def _message_clean(item: dict[str, Any], prefix: str, channel: str) -> dict[str, Any]:
    _fields(item, prefix, {"channel", "subject", "body", "body_html", "offer", "variants", "auto_winner"})
    step_channel = item.get("channel") or channel
    if step_channel not in Channel.values:
        raise _step_invalid(prefix, "channel", f"must be one of {', '.join(Channel.values)}")
    out: dict[str, Any] = {"channel": step_channel}
    variants = item.get("variants")
    if variants in (None, []):
        out["subject"], out["body"] = _content_clean(item, prefix, step_channel)
        if item.get("body_html"):
            out["body_html"] = item["body_html"]
    else:
        if not isinstance(variants, list) or not VARIANTS_MIN <= len(variants) <= VARIANTS_MAX:
            raise _step_invalid(prefix, "variants", f"must be a list of {VARIANTS_MIN} to {VARIANTS_MAX} variants")
        out["subject"], out["body"] = str(item.get("subject") or ""), str(item.get("body") or "")
        if isinstance(item.get("body_html"), str) and item["body_html"]:
            out["body_html"] = item["body_html"]
        seen: set[str] = set()
        cleaned_variants = []
        for number, variant in enumerate(variants):
            where = f"{prefix}.variants[{number}]"
            if not isinstance(variant, dict):
                raise v.invalid(where, "must be an object")
            unknown = sorted(set(variant) - {"key", "weight", "subject", "body", "body_html"})
            if unknown:
                raise _step_invalid(where, unknown[0], "unknown field for a variant")
            key = variant.get("key")
            if not isinstance(key, str) or not STEP_KEY_PATTERN.match(key):
                raise _step_invalid(where, "key", "must be 1-40 lower-case letters, digits, '-' or '_'")
            if key in seen:
                raise _step_invalid(where, "key", f"{key!r} is used by another variant")
            seen.add(key)
            weight = variant.get("weight", 1)
            if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= VARIANT_WEIGHT_MAX:
                raise _step_invalid(where, "weight", f"must be a positive whole number up to {VARIANT_WEIGHT_MAX}")
            # A variant without its own subject or body uses the step's.
            merged = {
                "subject": variant.get("subject") or out["subject"],
                "body": variant.get("body") or out["body"],
                "body_html": variant.get("body_html") or out.get("body_html", ""),
            }
            subject, body = _content_clean(merged, where, step_channel)
            cleaned_variant = {"key": key, "weight": weight, "subject": subject, "body": body}
            if merged["body_html"]:
                cleaned_variant["body_html"] = merged["body_html"]
            cleaned_variants.append(cleaned_variant)
        out["variants"] = cleaned_variants
    if item.get("offer") not in (None, {}):
        try:
            out["offer"] = offer_clean(item["offer"])
        except ApplicationError as error:
            raise _prefixed(error, prefix) from None
    winner = item.get("auto_winner")
    if winner not in (None, False):
        if not out.get("variants"):
            raise _step_invalid(prefix, "auto_winner", "needs variants")
        minimum = DEFAULT_MIN_PER_VARIANT
        if isinstance(winner, dict):
            unknown = sorted(set(winner) - {"min_per_variant"})
            if unknown:
                raise _step_invalid(prefix, f"auto_winner.{unknown[0]}", "unknown field")
            minimum = winner.get("min_per_variant", DEFAULT_MIN_PER_VARIANT)
        elif winner is not True:
            raise _step_invalid(prefix, "auto_winner", 'must be true or {"min_per_variant": N}')
        low, high = MIN_PER_VARIANT_RANGE
        out["auto_winner"] = {
            "min_per_variant": v.clean_count(
                minimum, f"{prefix}.auto_winner.min_per_variant", minimum=low, maximum=high
            )
        }
    return out


def _content_clean(item: dict[str, Any], prefix: str, channel: str) -> tuple[str, str]:
    subject, body = item.get("subject") or "", item.get("body") or ""
    body_html = item.get("body_html") or ""
    if not isinstance(subject, str):
        raise _step_invalid(prefix, "subject", "must be text")
    if not isinstance(body, str):
        raise _step_invalid(prefix, "body", "must be text")
    if not isinstance(body_html, str):
        raise _step_invalid(prefix, "body_html", "must be text")
    try:
        templates_validate(subject=subject, body=body, channel=channel, body_html=body_html)
        storable_text(subject, "subject")
        storable_text(body, "body")
    except ApplicationError as error:
        raise _prefixed(error, prefix) from None
    return subject, body


def _wait_clean(item: dict[str, Any], prefix: str, channel: str) -> dict[str, Any]:
    _fields(item, prefix, {"minutes", "until"})
    if ("minutes" in item) == ("until" in item):
        raise _step_invalid(prefix, "minutes", 'give either "minutes" or "until" (a local time like "10:00")')
    if "minutes" in item:
        return {"minutes": v.clean_count(item["minutes"], f"{prefix}.minutes", minimum=1, maximum=WAIT_MINUTES_MAX)}
    until = item["until"]
    if not isinstance(until, str) or not TIME_OF_DAY.match(until):
        raise _step_invalid(prefix, "until", 'must be a local time of day, "HH:MM" (e.g. "10:00")')
    return {"until": until}


def _split_clean(item: dict[str, Any], prefix: str, channel: str) -> dict[str, Any]:
    _fields(item, prefix, {"condition", "yes", "no"})
    condition = item.get("condition")
    if not isinstance(condition, dict) or len(condition) != 1:
        raise _step_invalid(prefix, "condition", f"must be an object with one of {', '.join(SPLIT_CONDITIONS)}")
    ((name, raw),) = condition.items()
    where = f"{prefix}.condition.{name}"
    if name not in SPLIT_CONDITIONS:
        raise _step_invalid(prefix, "condition", f"unknown condition {name!r}; use {', '.join(SPLIT_CONDITIONS)}")
    if name in FLAG_CONDITIONS:
        if raw is not True:
            raise v.invalid(where, "must be true")
        cleaned: Any = True
    elif name == "tier":
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x for x in raw):
            raise v.invalid(where, "must be a list of tier codes")
        cleaned = sorted(set(raw))
    elif name == "min_total_spent":
        cleaned = str(v.clean_money(raw, where))
        if Decimal(cleaned) < 0:
            raise v.invalid(where, "must not be negative")
    else:
        cleaned = v.clean_tags([raw], where)[0] if isinstance(raw, str) and raw else None
        if cleaned is None:
            raise v.invalid(where, "must be a tag")
    out: dict[str, Any] = {"condition": {name: cleaned}}
    for branch in ("yes", "no"):
        target = item.get(branch)
        if not isinstance(target, str) or not target:
            raise _step_invalid(prefix, branch, 'must be a step key or "exit"')
        out[branch] = target
    return out


def _tag_clean(item: dict[str, Any], prefix: str, channel: str) -> dict[str, Any]:
    _fields(item, prefix, {"add", "remove"})
    out: dict[str, Any] = {}
    for name in ("add", "remove"):
        if item.get(name) not in (None, []):
            out[name] = v.clean_tags(item[name], f"{prefix}.{name}")
    if not out:
        raise _step_invalid(prefix, "add", "give tags to add or remove")
    return out


def _refuse_cycles_without_wait(steps: list[dict[str, Any]]) -> None:
    """Every cycle through the steps must contain a wait: look for a cycle among the other steps."""
    keys = [item["key"] for item in steps]
    edges: dict[str, list[str]] = {}
    for position, item in enumerate(steps):
        if item["type"] == "wait":
            continue
        if item["type"] == "split":
            targets = [item["yes"], item["no"]]
        else:
            targets = [keys[position + 1]] if position + 1 < len(keys) else []
        edges[item["key"]] = [t for t in targets if t in edges or t in keys]
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(key: str, path: list[str]) -> None:
        state[key] = 1
        for target in edges.get(key, []):
            if target not in edges:  # a wait: the cycle, if any, passes time
                continue
            if state.get(target) == 1:
                position = keys.index(path[0]) if path else keys.index(key)
                raise _step_invalid(
                    f"steps[{position}]", "", f"a cycle without a wait ({' -> '.join([*path, key, target])})"
                )
            if state.get(target) is None:
                visit(target, [*path, key])
        state[key] = 2

    for key in edges:
        if state.get(key) is None:
            visit(key, [])


def reentry_clean(raw: Any, *, has_steps: bool) -> int | None:
    """``"never"`` -> None; ``{"after_days": N}`` -> N. Unset: ``never`` for a journey, and for a
    campaign without steps 0 days (a new entry per dedupe key, as SPEC §4 has it)."""
    if raw is None:
        return None if has_steps else 0
    if raw == "never":
        return None
    if isinstance(raw, dict) and set(raw) == {"after_days"}:
        return v.clean_count(raw["after_days"], "reentry.after_days", minimum=0, maximum=REENTRY_AFTER_DAYS_MAX)
    raise v.invalid("reentry", 'must be "never" or {"after_days": N}')


def reentry_shape(after_days: int | None) -> Any:
    return "never" if after_days is None else {"after_days": after_days}
