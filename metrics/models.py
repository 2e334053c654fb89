"""Stored metrics: each customer's nightly scores and the daily snapshot of the headline figures.

Everything here is derived from the customers app's data and can be recomputed at any time; the
rows exist so that the 360, audiences and trend charts read one indexed row instead of re-scanning
purchase history on every request.
"""

from django.db import models
from django.db.models import Q

from customers.models import MONEY_PLACES, Customer


class ChurnModel(models.TextChoices):
    BGNBD = "bgnbd", "BG/NBD probability alive"
    RHYTHM = "rhythm", "Purchase rhythm rule"


class RfmSegment(models.TextChoices):
    CHAMPIONS = "Champions"
    LOYAL = "Loyal"
    POTENTIAL_LOYALIST = "Potential loyalist"
    NEW = "New"
    AT_RISK = "At risk"
    CANNOT_LOSE = "Cannot lose"
    HIBERNATING = "Hibernating"
    LOST = "Lost"


class CustomerScore(models.Model):
    """One row per customer with a completed purchase, rewritten set-based by the nightly refresh.

    A customer without a completed purchase has no row: RFM and churn risk are undefined for them.
    """

    customer = models.OneToOneField(Customer, primary_key=True, on_delete=models.CASCADE, related_name="score")
    churn_risk = models.FloatField(help_text="0 = buying to rhythm, 1 = almost surely gone")
    p_alive = models.FloatField(null=True, blank=True, help_text="BG/NBD P(alive); empty where the rhythm rule scored")
    churn_model = models.CharField(max_length=16, choices=ChurnModel.choices)
    recency_days = models.PositiveIntegerField()
    frequency = models.PositiveIntegerField(help_text="Completed orders")
    monetary = models.DecimalField(max_digits=14, decimal_places=MONEY_PLACES, help_text="Completed spend")
    r_score = models.PositiveSmallIntegerField()
    f_score = models.PositiveSmallIntegerField()
    m_score = models.PositiveSmallIntegerField()
    rfm_segment = models.CharField(max_length=32, choices=RfmSegment.choices)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(churn_risk__gte=0) & Q(churn_risk__lte=1), name="score_churn_risk_0_1"),
            models.CheckConstraint(
                condition=Q(p_alive__isnull=True) | (Q(p_alive__gte=0) & Q(p_alive__lte=1)), name="score_p_alive_0_1"
            ),
            models.CheckConstraint(condition=Q(churn_model__in=ChurnModel.values), name="score_churn_model_valid"),
            models.CheckConstraint(condition=Q(r_score__gte=1) & Q(r_score__lte=5), name="score_r_1_5"),
            models.CheckConstraint(condition=Q(f_score__gte=1) & Q(f_score__lte=5), name="score_f_1_5"),
            models.CheckConstraint(condition=Q(m_score__gte=1) & Q(m_score__lte=5), name="score_m_1_5"),
            models.CheckConstraint(condition=Q(rfm_segment__in=RfmSegment.values), name="score_rfm_segment_valid"),
        ]
        indexes = [
            # Audiences select "churn risk >= threshold" and "segment = X".
            models.Index(fields=["churn_risk"], name="score_churn_risk_idx"),
            models.Index(fields=["rfm_segment"], name="score_rfm_segment_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.rfm_segment}, churn risk {self.churn_risk:.2f}"


class DailySnapshot(models.Model):
    """The headline figures as they stood at the end of one store-local day, for trend charts.

    The period is the ``period_days`` days up to the end of ``date``; ``window_days`` is W.
    """

    date = models.DateField(unique=True, help_text="Store-local day; figures as of its end")
    period_days = models.PositiveIntegerField()
    window_days = models.PositiveIntegerField()
    customers_start = models.PositiveIntegerField()
    customers_end = models.PositiveIntegerField()
    new_customers = models.PositiveIntegerField()
    retained = models.PositiveIntegerField()
    reactivated = models.PositiveIntegerField()
    lost = models.PositiveIntegerField()
    crr = models.FloatField(null=True, blank=True)
    churn_rate = models.FloatField(null=True, blank=True)
    orders = models.PositiveIntegerField()
    revenue = models.DecimalField(max_digits=16, decimal_places=MONEY_PLACES)
    repeat_purchase_rate = models.FloatField(null=True, blank=True)
    aov = models.DecimalField(max_digits=14, decimal_places=MONEY_PLACES, null=True, blank=True)
    nps = models.FloatField(null=True, blank=True)
    nps_answers = models.PositiveIntegerField()
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-date"]

    def __str__(self) -> str:
        return f"{self.date}: CRR {self.crr}"


class Dashboard(models.Model):
    """No table: gives the analysts' dashboard a place in the admin index and its own
    ``metrics.view_dashboard`` permission, which the analyst and marketer groups hold."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"

    def __str__(self) -> str:
        return "Retention dashboard"


# --- Rollups kept current by the database (metrics/rollups.py) ---------------------------------------

# A customer's chain of purchase days starts before every date and ends after every date: the
# pairs (FIRST_DAY, d1) and (dk, LAST_DAY) stand for "nothing before" and "nothing after".
CHAIN_FIRST_DAY = "0001-01-01"
CHAIN_LAST_DAY = "9999-12-31"


class DayChain(models.Model):
    """How many customers have a completed purchase on ``day`` and their next one on ``next_day``
    (store-local days, no purchase in between): one unit per consecutive pair of each customer's
    distinct purchase days, plus the two ends.

    Any customer has exactly one pair with day < t <= next_day for any date t (its last purchase
    day before t), so "customers active at t" is a sum over a range of pairs, not a scan of the
    purchases. Compacted from ``DayChainDelta``; read together with it.
    """

    day = models.DateField()
    next_day = models.DateField()
    customers = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "next_day"], name="day_chain_one_per_pair")]

    def __str__(self) -> str:
        return f"{self.day} -> {self.next_day}: {self.customers}"


class DayChainDelta(models.Model):
    """Changes to ``DayChain`` not yet folded in, appended by the purchase triggers (one row per
    changed pair and writing statement, never updated: concurrent writers never wait on each other)."""

    id = models.BigAutoField(primary_key=True)
    day = models.DateField()
    next_day = models.DateField()
    customers = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.day} -> {self.next_day}: {self.customers:+}"


class RollupState(models.Model):
    """The time zone the rollups' days are in, and when they were last built from the purchases.

    The purchase triggers write days in this zone; the fast reads serve only while it is the
    store's TIME_ZONE (a changed TIME_ZONE needs ``manage.py metrics_rollups_rebuild``)."""

    SINGLETON_ID = 1
    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID)
    time_zone = models.CharField(max_length=64)
    built_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"rollups in {self.time_zone}, built {self.built_at:%Y-%m-%d %H:%M}"
