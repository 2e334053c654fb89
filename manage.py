#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

# Commands that never open a database connection: they run without the embedded server.
NO_DATABASE = {"help", "version", "check", "collectstatic", "makemigrations"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        from django.conf import settings

        embedded = settings.EMBEDDED_DATABASE
    except ImproperlyConfigured as error:
        sys.exit(f"Configuration error: {error}")
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    asks_help = {"-h", "--help", "--version"} & set(sys.argv[1:])
    if embedded and command not in NO_DATABASE and not asks_help:
        from retention_crm import embedded_postgres

        if not embedded_postgres.is_running():
            sys.exit(
                "The embedded PostgreSQL is not running (DATABASE_URL is unset). Start the demo with "
                "`make run`, or the database alone with `make db-start`."
            )
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
