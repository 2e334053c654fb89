"""Settings, all read from the environment.

With nothing set the project runs embedded for a demo on a bare machine: a PostgreSQL server from
a pip-installed wheel and Celery's filesystem transport, both under ``var/``. ``DATABASE_URL`` and
``CELERY_BROKER_URL`` point it at your PostgreSQL and Redis (or RabbitMQ). Production secrets have
no default: ``DEBUG`` is off unless set, and then ``SECRET_KEY`` must be given (``make run`` sets
``DEBUG=true`` for the demo).
"""

import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from retention_crm import embedded_postgres

env = environ.Env()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = embedded_postgres.var_dir()  # VAR_DIR, by default var/ in the checkout

# Production is the default (SPEC §8): DEBUG is off unless set. `make run` and `make test` set
# DEBUG=true (the demo; the suite's plain-HTTP test client and static files from the apps).
DEBUG = env.bool("DEBUG", default=False)


def _development_secret_key(folder: Path, *, create: bool) -> str:
    """The random key made once per checkout under var/ while DEBUG is on (shared by the demo's
    web, worker and beat, and by later commands in the same checkout), never a key written in the
    code: a public key would let anyone forge unsubscribe links. Empty when there is none and
    ``create`` is off. The Docker image has no var/ (.dockerignore), so it never has one."""
    path = folder / "secret_key"
    if not path.exists():
        if not create:
            return ""
        folder.mkdir(parents=True, exist_ok=True)
        draft = folder / f".secret_key.{os.getpid()}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(draft, path)  # atomic: the first process to get here wins, the others read its key
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _development_secret_key(VAR_DIR, create=DEBUG)
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off (DEBUG is off unless set; DEBUG=true for development)."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Links in messages point at the port the demo serves on unless a public address is given.
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}").rstrip("/")
STORE_CURRENCY = env.str("STORE_CURRENCY", default="USD").upper()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "retention_crm.api",
    "customers",
    "campaigns",
    "metrics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "retention_crm.urls"
WSGI_APPLICATION = "retention_crm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "retention_crm" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
# PostgreSQL only: one SQL dialect everywhere. With no DATABASE_URL the embedded server under
# var/postgres/ (started by `make run`, see retention_crm/embedded_postgres.py) is the database.
VAR_DIR.mkdir(parents=True, exist_ok=True)
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    if "postgresql" not in DATABASES["default"]["ENGINE"]:
        raise ImproperlyConfigured(
            f"DATABASE_URL must point at PostgreSQL (postgres://user:pass@host:5432/name), not "
            f"{DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}. Leave it unset for the embedded PostgreSQL."
        )
    EMBEDDED_DATABASE = False
else:
    DATABASES = {"default": embedded_postgres.Server(VAR_DIR / "postgres").connection_settings()}
    EMBEDDED_DATABASE = True
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Internationalisation and time ---------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")  # the store's time zone
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps while developing, so `make run` needs no collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Email ----------------------------------------------------------------------------------------
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default=_email["EMAIL_BACKEND"])
EMAIL_HOST = _email.get("EMAIL_HOST", "")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_FILE_PATH = _email.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="shop@example.com")
# Campaign test sends go to the staff user's own address, or to these domains (comma-separated).
TEST_EMAIL_DOMAINS = env.list("TEST_EMAIL_DOMAINS", default=[])

# --- Campaign channels -----------------------------------------------------------------------------
# Email goes through EMAIL_BACKEND above. SMS, push and webhook (messenger bots) POST JSON to their
# provider when <CHANNEL>_URL is set (with <CHANNEL>_TOKEN as a bearer token); with no URL they
# print to the console. <CHANNEL>_BACKEND picks another: http, console, file, locmem or a dotted path.
CAMPAIGN_CHANNELS: dict[str, dict[str, object]] = {"email": {"BACKEND": "email"}}
for _channel in ("sms", "push", "webhook"):
    _prefix = _channel.upper()
    _url = env.str(f"{_prefix}_URL", default="")
    CAMPAIGN_CHANNELS[_channel] = {
        "BACKEND": env.str(f"{_prefix}_BACKEND", default="http" if _url else "console"),
        "URL": _url,
        "TOKEN": env.str(f"{_prefix}_TOKEN", default=""),
        "TIMEOUT": env.float(f"{_prefix}_TIMEOUT", default=10.0),
    }
# Telegram (SPEC §4.2): the Bot API's token and the bot's username (for t.me deep links), the API's
# address (a local stand-in in tests) and the secret path segment of the bot's webhook, which must
# be registered with the Bot API's setWebhook (docs/OPERATIONS.md). No token: telegram sends retry
# and then fail; no secret: the webhook refuses everything.
TELEGRAM_BOT_TOKEN = env.str("TELEGRAM_BOT_TOKEN", default="")
TELEGRAM_BOT_NAME = env.str("TELEGRAM_BOT_NAME", default="")
TELEGRAM_API_URL = env.str("TELEGRAM_API_URL", default="https://api.telegram.org")
TELEGRAM_WEBHOOK_SECRET = env.str("TELEGRAM_WEBHOOK_SECRET", default="")
# Without a bot token telegram messages print to the console, as the other channels do without a URL.
CAMPAIGN_CHANNELS["telegram"] = {
    "BACKEND": env.str("TELEGRAM_BACKEND", default="telegram" if TELEGRAM_BOT_TOKEN else "console"),
    "TIMEOUT": env.float("TELEGRAM_TIMEOUT", default=10.0),
}
# The file backend's folder (one JSON line per message and channel).
CAMPAIGN_FILE_DIR = env.str("CAMPAIGN_FILE_DIR", default=str(VAR_DIR / "outbox"))
# Providers sign their delivery callbacks with this secret (HMAC-SHA256 over "<timestamp>.<body>",
# see retention_crm/api/signing.py); empty refuses every callback. A timestamp further than the
# tolerance from now is refused, and so is a signature seen before.
CAMPAIGN_CALLBACK_SECRET = env.str("CAMPAIGN_CALLBACK_SECRET", default="")
CAMPAIGN_CALLBACK_TOLERANCE_SECONDS = env.int("CAMPAIGN_CALLBACK_TOLERANCE_SECONDS", default=300)
# A message this long in "sending" is taken to belong to a dead worker and is queued again. Keep it
# above the send task's hard time limit (300 s) so a live worker's messages are never taken.
CAMPAIGN_SENDING_STALE_SECONDS = env.int("CAMPAIGN_SENDING_STALE_SECONDS", default=900)
# Messages one send task claims at a time.
CAMPAIGN_SEND_BATCH_SIZE = env.int("CAMPAIGN_SEND_BATCH_SIZE", default=500)
# Connections to the mail server (SMTP, or an ESP through django-anymail) one send task uses at once,
# each in its own thread recording each of its messages right after the send: a worker that dies
# leaves at most this many sent-but-unrecorded messages. 1 sends one message at a time.
CAMPAIGN_SMTP_CONNECTIONS = env.int("CAMPAIGN_SMTP_CONNECTIONS", default=4)
# A send's record commits without waiting for the disk flush (synchronous_commit off for that
# statement): a dead worker cannot lose it; only a PostgreSQL crash could lose the last fraction of
# a second of records, whose messages would then be sent again. false waits for the flush.
CAMPAIGN_SEND_RECORD_ASYNC_COMMIT = env.bool("CAMPAIGN_SEND_RECORD_ASYNC_COMMIT", default=True)

# --- Security (all on once DEBUG is off; `manage.py check --deploy` stays clean) -----------------
# X-Forwarded-Proto is believed only behind a proxy that sets it (and strips a client's own).
TRUST_PROXY_SSL_HEADER = env.bool("TRUST_PROXY_SSL_HEADER", default=False)
if TRUST_PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Reverse proxies in front of the web that append to X-Forwarded-For: 0 means the client's address
# is REMOTE_ADDR (a client cannot spoof it); throttles and the login lockout key on it.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)

# Failed staff logins (django-axes, attempts in the database): LOGIN_FAILURE_LIMIT failures for one
# username from one address lock that pair out for LOGIN_LOCKOUT_MINUTES (429).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_LOCKOUT_MINUTES", default=15.0) / 60  # a float is hours to axes
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "retention_crm.api.throttling.client_address"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "retention_crm.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["retention_crm.api.permissions.ScopePermission"],
    "DEFAULT_PARSER_CLASSES": ["retention_crm.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "retention_crm.api.pagination.Pagination",
    "DEFAULT_THROTTLE_CLASSES": ["retention_crm.api.throttling.PerKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": env.str("API_RATE_LIMIT", default="6000/min"),
        "callbacks": env.str("CAMPAIGN_CALLBACK_RATE_LIMIT", default="600/min"),
    },
    "NUM_PROXIES": NUM_PROXIES,
    "EXCEPTION_HANDLER": "retention_crm.api.errors.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
}
# Bad API keys from one address in a minute before that address gets 429 for the rest of it.
API_AUTH_FAILURES_PER_MINUTE = env.int("API_AUTH_FAILURES_PER_MINUTE", default=20)
# Throttle counters live in the cache: use Redis (CACHE_URL) when several web processes run.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

# --- Loyalty over the API ------------------------------------------------------------------------
# POST .../loyalty/adjust (scope loyalty_adjust) moves at most this many points either way per
# request; grants of LOYALTY_ADJUST_AUDIT_POINTS or more get their own audit entry.
LOYALTY_ADJUST_MAX_POINTS = env.int("LOYALTY_ADJUST_MAX_POINTS", default=10_000)
LOYALTY_ADJUST_AUDIT_POINTS = env.int("LOYALTY_ADJUST_AUDIT_POINTS", default=1_000)
SPECTACULAR_SETTINGS = {
    "TITLE": "retention_crm API",
    "DESCRIPTION": "Customers, purchases, carts, loyalty, campaigns and retention metrics.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "PurchaseStatusEnum": "customers.models.PurchaseStatus",
        "CartStatusEnum": "customers.models.CartStatus",
        "BulkResultStatusEnum": "customers.serializers.BULK_RESULT_STATUSES",
        "CampaignStatusEnum": "campaigns.models.CampaignStatus",
    },
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files ship with the project (no CDN): the docs work on a closed network too.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "APPEND_COMPONENTS": {"securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "Authorization"}}},
    "SECURITY": [{"ApiKey": []}],
}

# --- Celery ---------------------------------------------------------------------------------------
# With a host named, kombu does not warn "No hostname was supplied" on every connection.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded mode: one shared folder is both the inbox and the outbox of every process.
    _queue_dir = VAR_DIR / "celery" / "queue"
    _processed_dir = VAR_DIR / "celery" / "processed"
    _control_dir = VAR_DIR / "celery" / "control"  # kombu's exchange table; it defaults to ./control
    for _folder in (_queue_dir, _processed_dir, _control_dir):
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "control_folder": str(_control_dir),
        "store_processed": False,
    }
else:
    # A task unacknowledged this long is handed to another worker (acks_late + Redis).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("default", "triggers", "sends", "metrics")
]
CELERY_TASK_DEFAULT_EXCHANGE = "default"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = False

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
