"""The audience filter of a campaign: who among the eligible may receive it.

``{}`` means everyone eligible. Keys, all optional and combined with AND:

- ``tier``: loyalty tier codes, any of (``["silver", "gold"]``);
- ``rfm_segment``: RFM segment names, any of (``["At risk", "Cannot lose"]``), from the nightly scores;
- ``tags``: customer tags, any of; ``exclude_tags``: none of;
- ``min_total_spent`` / ``max_total_spent``: completed spend, inclusive (decimal strings);
- ``consent``: channels the customer must also have granted, besides the campaign's own.

The filter compiles into conditions on ``c`` (customers_customer) inside the evaluation's one
statement. RFM segments come from the metrics app's selector, embedded as a subquery.
"""

from decimal import Decimal
from typing import Any

from campaigns.sql import Sql, queryset_sql, value
from campaigns.templating import storable_text
from customers.models import Channel
from retention_crm import validation as v
from retention_crm.errors import ApplicationError

AUDIENCE_KEYS = ("tier", "rfm_segment", "tags", "exclude_tags", "min_total_spent", "max_total_spent", "consent")
MAX_LIST_LENGTH = 100


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"audience.{field}: {message}", code="invalid", fields={f"audience.{field}": [message]})


def _string_list(raw: Any, field: str, max_length: int = 64) -> list[str]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or len(raw) > MAX_LIST_LENGTH:
        raise _invalid(field, f"must be a non-empty list of at most {MAX_LIST_LENGTH} strings")
    cleaned: list[str] = []
    for item in raw:
        if not isinstance(item, str) or not item.strip() or len(item) > max_length:
            raise _invalid(field, f"must hold non-empty strings of at most {max_length} characters")
        storable_text(item, f"audience.{field}")
        if item.strip() not in cleaned:
            cleaned.append(item.strip())
    return cleaned


def tier_codes() -> list[str]:
    """The loyalty program's tier codes (staff may rename them; a filter must name existing ones)."""
    from customers.loyalty.services import DEFAULT_TIERS
    from customers.models import LoyaltyTier

    codes = list(LoyaltyTier.objects.order_by("threshold").values_list("code", flat=True))
    return codes or [code for code, *_ in DEFAULT_TIERS]


def tier_choices() -> list[tuple[str, str]]:
    """(code, name) of each tier, in the program's order: the editor shows names, stores codes."""
    from customers.loyalty.services import DEFAULT_TIERS
    from customers.models import LoyaltyTier

    tiers = list(LoyaltyTier.objects.order_by("threshold").values_list("code", "name"))
    return tiers or [(code, name) for code, name, *_ in DEFAULT_TIERS]


def rfm_segment_names() -> list[str]:
    from metrics.models import RfmSegment

    return list(RfmSegment.values)


def audience_clean(raw: Any) -> dict[str, Any]:
    """The audience filter, validated and normalised; raises ApplicationError naming the field."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ApplicationError(
            "audience: must be an object", code="invalid", fields={"audience": ["must be an object"]}
        )
    unknown = sorted(set(raw) - set(AUDIENCE_KEYS))
    if unknown:
        raise _invalid(unknown[0], f"unknown filter; use {', '.join(AUDIENCE_KEYS)}")
    cleaned: dict[str, Any] = {}
    for key in ("tier", "tags", "exclude_tags"):
        if raw.get(key) not in (None, [], ""):
            cleaned[key] = _string_list(raw[key], key)
    if "tier" in cleaned:
        codes = tier_codes()
        wrong = [code for code in cleaned["tier"] if code not in codes]
        if wrong:
            raise _invalid("tier", f"unknown tier {wrong[0]!r}; use {', '.join(codes)}")
    if raw.get("rfm_segment") not in (None, [], ""):
        segments = _string_list(raw["rfm_segment"], "rfm_segment")
        names = rfm_segment_names()
        wrong = [segment for segment in segments if segment not in names]
        if wrong:
            raise _invalid("rfm_segment", f"unknown segment {wrong[0]!r}; use {', '.join(names)}")
        cleaned["rfm_segment"] = segments
    for key in ("min_total_spent", "max_total_spent"):
        if raw.get(key) not in (None, ""):
            try:
                cleaned[key] = str(v.clean_money(raw[key], f"audience.{key}"))
            except ApplicationError as error:
                raise _invalid(key, error.fields.get(f"audience.{key}", ["is invalid"])[0]) from None
    low, high = cleaned.get("min_total_spent"), cleaned.get("max_total_spent")
    if low is not None and high is not None and Decimal(low) > Decimal(high):
        raise _invalid("max_total_spent", "must not be below min_total_spent")
    if raw.get("consent") not in (None, [], ""):
        channels = _string_list(raw["consent"], "consent")
        wrong = [channel for channel in channels if channel not in Channel.values]
        if wrong:
            raise _invalid("consent", f"unknown channel {wrong[0]!r}; use {', '.join(Channel.values)}")
        cleaned["consent"] = channels
    return cleaned


def granted_sql(channel: str) -> Sql:
    return Sql.format(
        "EXISTS (SELECT 1 FROM customers_consent consent"
        " WHERE consent.customer_id = c.id AND consent.channel = {channel} AND consent.granted)",
        channel=value(channel),
    )


def granted_join(alias: str, channel: str, *, customer: str) -> Sql:
    """``granted_sql`` as a LEFT JOIN: the granted consent of ``customer`` for ``channel`` as
    ``alias`` (NULL columns without one; consents are unique per customer and channel).

    For statements over many rows: the planner can hash a join, where the correlated EXISTS is one
    index lookup per row (a million of them when a million journey entries are due at once).
    """
    return Sql.format(
        f" LEFT JOIN customers_consent {alias} ON {alias}.customer_id = {customer}"
        f" AND {alias}.channel = {{channel}} AND {alias}.granted",
        channel=value(channel),
    )


def audience_sql(audience: dict[str, Any]) -> list[Sql]:
    """Conditions on ``c`` for a cleaned audience filter."""
    conditions: list[Sql] = []
    if audience.get("tier"):
        conditions.append("c.tier = ANY(" + value(audience["tier"], "text[]") + ")")
    if audience.get("rfm_segment"):
        from metrics.selectors import customers_in_rfm_segment

        segments = audience["rfm_segment"]
        in_segments = customers_in_rfm_segment(segments[0])
        for segment in segments[1:]:
            in_segments = in_segments | customers_in_rfm_segment(segment)
        conditions.append("c.id IN (" + queryset_sql(in_segments.values("pk")) + ")")
    if audience.get("tags"):
        conditions.append("c.tags ?| " + value(audience["tags"], "text[]"))
    if audience.get("exclude_tags"):
        conditions.append("NOT (c.tags ?| " + value(audience["exclude_tags"], "text[]") + ")")
    if audience.get("min_total_spent") is not None:
        conditions.append("c.total_spent >= " + value(Decimal(audience["min_total_spent"]), "numeric"))
    if audience.get("max_total_spent") is not None:
        conditions.append("c.total_spent <= " + value(Decimal(audience["max_total_spent"]), "numeric"))
    for channel in audience.get("consent", []):
        conditions.append(granted_sql(channel))
    return conditions
