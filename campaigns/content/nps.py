"""NPS answered inside the message (SPEC §4.2): ``{{ nps_links }}`` gives 0-10 signed links; a click
records the answer for that message, a later click within ``ANSWER_CHANGE_WINDOW`` replaces it, and
the first answer earns the review bonus (SPEC §3, ``points_review_bonus``, itself once per purchase).
"""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from campaigns.content.links import InvalidLink, nps_read
from campaigns.content.tracking import message_engagement_record
from campaigns.models import Message
from customers.loyalty.services import points_review_bonus
from customers.models import NpsResponse
from retention_crm import validation as v
from retention_crm.errors import ApplicationError

ANSWER_CHANGE_WINDOW = dt.timedelta(days=7)
COMMENT_MAX_LENGTH = 5_000


@dataclass(frozen=True)
class LinkAnswer:
    answer: NpsResponse
    changed: bool  # False: a click after the window, the earlier answer stands


def _invalid() -> ApplicationError:
    return ApplicationError("This survey link is not valid.", code="invalid_token")


def _message_locked(token: str) -> tuple[Message, int]:
    try:
        message_uuid, score = nps_read(token)
    except InvalidLink:
        raise _invalid() from None
    # Locked: two clicks at once (a double click) make one answer, not a unique violation.
    message = Message.objects.select_for_update().select_related("customer").filter(uuid=message_uuid).first()
    if message is None or message.customer.erased_at is not None:
        raise _invalid()
    return message, score


@transaction.atomic
def nps_link_answer(*, token: str, now: dt.datetime | None = None) -> LinkAnswer:
    """Record the score a signed NPS link names as the answer to its message.

    The first click creates the answer (and may earn the review bonus); a click within
    ``ANSWER_CHANGE_WINDOW`` of the current answer replaces its score; a later one changes nothing.
    Raises ApplicationError (400) for a tampered link or an erased customer.
    """
    now = now or timezone.now()
    message, score = _message_locked(token)
    answer = NpsResponse.objects.filter(message=message).first()
    if answer is None:
        answer = NpsResponse.objects.create(customer=message.customer, score=score, answered_at=now, message=message)
        points_review_bonus(customer_id=message.customer_id, answered_at=now, now=now)
        message_engagement_record(message_uuid=message.uuid, event="clicked", at=now)
        return LinkAnswer(answer=answer, changed=True)
    if now - answer.answered_at > ANSWER_CHANGE_WINDOW:
        return LinkAnswer(answer=answer, changed=False)
    if answer.score != score:
        answer.score, answer.answered_at = score, now
        answer.save(update_fields=["score", "answered_at"])
    return LinkAnswer(answer=answer, changed=True)


@transaction.atomic
def nps_link_comment(*, token: str, comment: object, now: dt.datetime | None = None) -> LinkAnswer:
    """The thank-you page's comment, kept on the message's answer (recorded first if the click's
    answer is missing). Raises ApplicationError for a bad link or a comment that cannot be stored."""
    text = v.clean_text(comment, "comment", COMMENT_MAX_LENGTH)
    result = nps_link_answer(token=token, now=now)
    if text and result.answer.comment != text:
        result.answer.comment = text
        result.answer.save(update_fields=["comment"])
    return result
