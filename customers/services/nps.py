"""Writes for NPS answers."""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from customers.loyalty.services import points_review_bonus
from customers.models import NpsResponse
from customers.services.customers import customer_get
from retention_crm import validation as v


@transaction.atomic
def nps_record(*, customer: str, score: int, comment: str = "", answered_at: dt.datetime | None = None) -> NpsResponse:
    """Store one NPS answer (score 0-10) of a known customer; it may earn the review bonus."""
    owner = customer_get(external_id=v.clean_external_id(customer, "customer"))
    answer = NpsResponse.objects.create(
        customer=owner,
        score=v.clean_count(score, "score", minimum=0, maximum=10),
        comment=v.clean_text(comment, "comment", 5000),
        answered_at=v.clean_happened_at(answered_at, "answered_at") if answered_at else timezone.now(),
    )
    # Loyalty: the review/NPS bonus, once per purchase (see points_review_bonus).
    points_review_bonus(customer_id=owner.pk, answered_at=answer.answered_at)
    return answer
