"""Tiers: customers move to the tier their trailing-365-day completed spend reaches."""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db.models import Case, DecimalField, F, OuterRef, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from customers.models import Customer, Purchase, PurchaseStatus, TierChange
from customers.services.loyalty.program import TRAILING_SPEND_WINDOW, Program, loyalty_program_get

# --- Tiers -----------------------------------------------------------------------------------------


def tiers_apply(
    *,
    customers: Any,
    program: Program,
    now: dt.datetime,
    cause: str,
) -> int:
    """Move the given customers (a queryset) to the tier their trailing-365-day completed spend
    reaches, recording each move in the tier history; returns how many moved.

    One SELECT ... FOR UPDATE finds and locks only the customers whose tier is wrong, then one
    INSERT of history and one UPDATE per target tier.
    """
    spend = (
        Purchase.objects.filter(
            customer=OuterRef("pk"),
            status=PurchaseStatus.COMPLETED,
            placed_at__gt=now - TRAILING_SPEND_WINDOW,
            placed_at__lte=now,
        )
        .order_by()
        .values("customer")
        .annotate(total=Sum("total"))
        .values("total")
    )
    money = DecimalField(max_digits=14, decimal_places=2)
    target = Case(
        *[When(spend__gte=tier.threshold, then=Value(tier.code)) for tier in reversed(program.tiers)],
        default=Value(program.tiers[0].code),
    )
    moves = list(
        customers.annotate(spend=Coalesce(Subquery(spend, output_field=money), Value(Decimal(0)), output_field=money))
        .annotate(target=target)
        .exclude(tier=F("target"))
        .select_for_update()
        .order_by("pk")
        .values_list("pk", "tier", "target", "spend")
    )
    if not moves:
        return 0
    TierChange.objects.bulk_create(
        [
            TierChange(
                customer_id=pk, from_tier=old, to_tier=new, trailing_spend=spent or 0, cause=cause, changed_at=now
            )
            for pk, old, new, spent in moves
        ]
    )
    by_target: dict[str, list[int]] = defaultdict(list)
    for pk, _, new, _ in moves:
        by_target[new].append(pk)
    for code, ids in by_target.items():
        Customer.objects.filter(pk__in=ids).update(tier=code)
    return len(moves)


def tiers_recompute_for_customers(
    *, customer_ids: Iterable[int], cause: str = TierChange.Cause.PURCHASE, now: dt.datetime | None = None
) -> int:
    """Recompute the tier of these customers now (after a purchase, refund or cancellation)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return 0
    return tiers_apply(
        customers=Customer.objects.filter(pk__in=ids),
        program=loyalty_program_get(),
        now=now or timezone.now(),
        cause=cause,
    )
