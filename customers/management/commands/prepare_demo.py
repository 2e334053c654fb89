"""Everything `make run` does before starting the processes, in one command (one start-up of
Django instead of three): migrate, seed the demo once, make the demo admin."""

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Migrate, load the demo data if the database has no customers, and create the demo admin (DEBUG only)."
    requires_system_checks = []  # migrate runs them

    def handle(self, *args, **options) -> None:
        # The checks run with the test suite and `manage.py check`; a demo start need not repeat them.
        call_command("migrate", interactive=False, verbosity=1, skip_checks=True)
        call_command("seed_demo", if_empty=True)
        call_command("create_demo_admin")
