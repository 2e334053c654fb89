"""API keys (only a hash and a short prefix are stored; the key itself is shown once), the workers'
heartbeats that /healthz reads, and the provider callback signatures already seen (replay guard)."""

from django.db import models
from django.db.models import Q
from django.utils.timezone import now


class Scope(models.TextChoices):
    READ = "read", "Read customers, purchases and carts"
    WRITE = "write", "Write customers, purchases, carts, consents and NPS answers"
    LOYALTY = "loyalty", "Read and spend loyalty points"
    LOYALTY_ADJUST = "loyalty_adjust", "Adjust loyalty points (capped per request)"
    CAMPAIGNS = "campaigns", "Manage and run campaigns"
    METRICS = "metrics", "Read metrics"


class ApiKey(models.Model):
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True, help_text="The key's first characters, to recognise it")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=~Q(name=""), name="api_key_name_not_empty")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class WorkerHeartbeat(models.Model):
    """Each Celery worker writes its row every few seconds; /healthz reads the newest."""

    hostname = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField()

    class Meta:
        verbose_name = "worker heartbeat"

    def __str__(self) -> str:
        return f"{self.hostname} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class SeenCallbackSignature(models.Model):
    """Signatures of provider callbacks already accepted, kept for the tolerance window, so a
    replayed callback is refused. In the database, so every web process sees the same set."""

    signature = models.CharField(max_length=64, primary_key=True)
    seen_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        verbose_name = "seen callback signature"

    def __str__(self) -> str:
        return f"{self.signature[:12]}… at {self.seen_at:%Y-%m-%d %H:%M:%S}"
