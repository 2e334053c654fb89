"""manage.py metrics_rollups_rebuild: recompute the metrics rollups from the purchases.

Needed after TIME_ZONE changes (until then the figures are computed from the purchases, slower)
or after purchases were loaded with the rollup triggers off. ``--check`` compares the rollups kept
by the triggers with a recomputation and changes nothing: exit status 1 when they differ.
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from metrics.rollups import rollup_rows, rollups_compact, rollups_rebuild


class Command(BaseCommand):
    help = "Recompute the metrics rollups from every purchase (after a TIME_ZONE change or a raw load)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="compare with a recomputation; change nothing")

    def handle(self, *args, check: bool = False, **options) -> None:
        if not check:
            result = rollups_rebuild()
            rollups_compact()
            self.stdout.write(f"rebuilt: {result.pairs:,} day pairs, days in {result.time_zone}")
            return
        with transaction.atomic():
            kept = rollup_rows()
            rollups_rebuild()
            recomputed = rollup_rows()
            transaction.set_rollback(True)
        differing = {name: len(set(rows) ^ set(recomputed[name])) for name, rows in kept.items()}
        if any(differing.values()):
            where = ", ".join(f"{name} in {n} rows" for name, n in differing.items() if n)
            raise CommandError(f"the rollups differ from a recomputation: {where}; run without --check")
        sizes = ", ".join(f"{len(rows):,} {name} rows" for name, rows in kept.items())
        self.stdout.write(f"the rollups match a recomputation ({sizes})")
