"""API keys: only a hash and a short prefix are stored; the key itself is shown once."""

from django.db import models
from django.db.models import Q
from django.utils.timezone import now


class Scope(models.TextChoices):
    READ = "read", "Read customers, purchases and carts"
    WRITE = "write", "Write customers, purchases, carts, consents and NPS answers"
    LOYALTY = "loyalty", "Read and spend loyalty points"
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
