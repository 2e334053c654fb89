"""Create the demo superuser for `make run` (development only: refused when DEBUG is off)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"


class Command(BaseCommand):
    help = "Create the demo superuser demo/demo if it does not exist (DEBUG only)."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("The demo admin is for development only; DEBUG is off.")
        User = get_user_model()
        if User.objects.filter(username=DEMO_USERNAME).exists():
            self.stdout.write(f"Demo admin exists: {DEMO_USERNAME} / {DEMO_PASSWORD}")
            return
        User.objects.create_superuser(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD)
        self.stdout.write(self.style.SUCCESS(f"Demo admin created: {DEMO_USERNAME} / {DEMO_PASSWORD}"))
