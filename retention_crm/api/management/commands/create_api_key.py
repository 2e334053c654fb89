"""manage.py create_api_key NAME --scopes read write ... — prints the new key once.

Scopes: read, write, loyalty, loyalty_adjust, campaigns, metrics (retention_crm.api.models.Scope)."""

from django.core.management.base import BaseCommand, CommandError

from retention_crm.api.keys import api_key_create
from retention_crm.api.models import Scope
from retention_crm.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an API key with the given scopes and print it (it is not stored and not shown again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="What the key is for, e.g. 'shop backend'")
        parser.add_argument(
            "--scopes",
            nargs="+",
            required=True,
            choices=Scope.values,
            metavar="SCOPE",
            help="; ".join(f"{scope.value}: {scope.label}" for scope in Scope),
        )

    def handle(self, *args, name: str, scopes: list[str], **options) -> None:
        try:
            key, raw_key = api_key_create(name=name, scopes=scopes)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stderr.write(
            f"API key '{key.name}' with scopes {', '.join(key.scopes)}. Store it now; it is not shown again:"
        )
        self.stdout.write(raw_key)
