"""WSGI entry point (gunicorn retention_crm.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")
application = get_wsgi_application()
