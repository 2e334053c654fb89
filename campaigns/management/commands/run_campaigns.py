"""manage.py run_campaigns [--campaign ID ...] [--send]: evaluate active campaigns now.

Without --send the due messages go to the workers, as with "run now"; with --send this process
sends them itself, batch after batch (useful without a worker, e.g. in a cron job or the demo).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Campaign, CampaignStatus
from campaigns.services import campaign_run, messages_send_batch
from retention_crm.errors import ApplicationError

MAX_SEND_BATCHES = 10_000  # a bound on the loop, far above any real backlog


class Command(BaseCommand):
    help = "Evaluate active campaigns now (all, or the given ids) and queue or send their messages."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--campaign", type=int, action="append", dest="campaigns", help="a campaign id")
        parser.add_argument("--send", action="store_true", help="send the due messages in this process")

    def handle(self, *args: Any, campaigns: list[int] | None = None, send: bool = False, **options: Any) -> None:
        ids = campaigns or list(
            Campaign.objects.filter(status=CampaignStatus.ACTIVE).order_by("pk").values_list("pk", flat=True)
        )
        for campaign_id in ids:
            try:
                counts = campaign_run(campaign_id=campaign_id).counts()
            except ApplicationError as error:
                raise CommandError(f"campaign {campaign_id}: {error.message}") from None
            line = ", ".join(f"{name} {number}" for name, number in counts.items())
            self.stdout.write(f"campaign {campaign_id}: {line}")
            if send:
                sent = failed = 0
                for _ in range(MAX_SEND_BATCHES):
                    result = messages_send_batch(campaign_id=campaign_id)
                    sent, failed = sent + result.sent, failed + result.failed
                    if not result.full:
                        break
                self.stdout.write(f"campaign {campaign_id}: sent {sent}, failed {failed}")
