"""Check the loyalty ledger's invariants over every customer; exits non-zero when one fails.

manage.py loyalty_verify            # a summary, and the first mismatches
manage.py loyalty_verify --show 100
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.loyalty.selectors import lots_overdrawn, loyalty_mismatches

DEFAULT_SHOWN = 20


class Command(BaseCommand):
    help = "Check that every cached points balance equals the ledger's sum and its open lots' sum."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--show", type=int, default=DEFAULT_SHOWN, help="mismatches to list (default 20)")

    def handle(self, *args: Any, **options: Any) -> None:
        shown = max(options["show"], 0)
        mismatches = list(
            loyalty_mismatches().values_list("pk", "external_id", "points_balance", "ledger_sum", "lots_sum")[
                : shown + 1
            ]
        )
        overdrawn = list(lots_overdrawn().values_list("pk", "customer_id", "points", "remaining")[: shown + 1])
        for pk, external_id, balance, ledger_sum, lots_sum in mismatches[:shown]:
            self.stdout.write(
                f"customer {external_id} (id {pk}): balance {balance}, ledger sum {ledger_sum}, open lots {lots_sum}"
            )
        for pk, customer_id, points, remaining in overdrawn[:shown]:
            self.stdout.write(f"entry {pk} (customer id {customer_id}): points {points}, remaining {remaining}")
        if mismatches or overdrawn:
            more = " (or more)" if len(mismatches) > shown or len(overdrawn) > shown else ""
            raise CommandError(
                f"Loyalty ledger check failed: {len(mismatches)} customer(s) and {len(overdrawn)} lot(s) "
                f"out of line{more}."
            )
        self.stdout.write(
            self.style.SUCCESS("Loyalty ledger OK: every balance equals its ledger's sum and its open lots.")
        )
