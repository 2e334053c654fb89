"""Writes of the campaigns app: campaigns, evaluation, sending, and what comes back after a send."""

from campaigns.services.campaigns import (
    campaign_clean,
    campaign_create,
    campaign_get,
    campaign_status_set,
    campaign_update,
)
from campaigns.services.editor import Preview, campaign_preview, campaign_send_test
from campaigns.services.evaluation import EvaluationResult
from campaigns.services.events import (
    EventsResult,
    ProviderEvent,
    provider_events_clean,
    provider_events_record,
    unsubscribe_confirm,
    unsubscribe_target,
)
from campaigns.services.policy import Policy, contact_policy_get
from campaigns.services.running import (
    campaign_advance,
    campaign_evaluate,
    campaign_run,
    journeys_advance_due,
)
from campaigns.services.sending import (
    SendResult,
    messages_dispatch_due,
    messages_expire_stale,
    messages_requeue_stale,
    messages_send_batch,
    sends_enqueue,
)

__all__ = [
    "EvaluationResult",
    "EventsResult",
    "Policy",
    "Preview",
    "ProviderEvent",
    "SendResult",
    "campaign_advance",
    "campaign_clean",
    "campaign_create",
    "campaign_evaluate",
    "campaign_get",
    "campaign_preview",
    "campaign_run",
    "campaign_send_test",
    "campaign_status_set",
    "campaign_update",
    "contact_policy_get",
    "journeys_advance_due",
    "messages_dispatch_due",
    "messages_expire_stale",
    "messages_requeue_stale",
    "messages_send_batch",
    "provider_events_clean",
    "provider_events_record",
    "sends_enqueue",
    "unsubscribe_confirm",
    "unsubscribe_target",
]
