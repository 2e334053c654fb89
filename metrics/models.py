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


class LifecycleBoard(models.Model):
    """No table and no permission of its own: puts the lifecycle board (a page of the dashboard,
    behind its ``metrics.view_dashboard``) in the admin index."""

    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = "lifecycle board"
        verbose_name_plural = "lifecycle board"

    def __str__(self) -> str:
        return "Lifecycle board"


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


# --- Day totals and single-order days (metrics/rollups.py) ------------------------------------------

# The gap cap and the longest period are in metrics/rollup_sql.py (SINGLE_GAP_CAP,
# REPEAT_MAX_PERIOD_DAYS), which must import without Django set up.


class DayTotal(models.Model):
    """Completed orders and revenue placed on each store-local day. Compacted from
    ``DayTotalDelta``; read together with it."""

    day = models.DateField(primary_key=True)
    orders = models.BigIntegerField()
    revenue = models.DecimalField(max_digits=18, decimal_places=MONEY_PLACES)

    def __str__(self) -> str:
        return f"{self.day}: {self.orders} orders, {self.revenue}"


class DayTotalDelta(models.Model):
    """Changes to ``DayTotal`` not yet folded in (append-only, like ``DayChainDelta``)."""

    id = models.BigAutoField(primary_key=True)
    day = models.DateField()
    orders = models.BigIntegerField()
    revenue = models.DecimalField(max_digits=18, decimal_places=MONEY_PLACES)

    def __str__(self) -> str:
        return f"{self.day}: {self.orders:+} orders, {self.revenue:+}"


class DaySingle(models.Model):
    """How many customers placed exactly one completed order on ``day``, with their previous
    purchase day ``gap_before`` days earlier and their next ``gap_after`` days later (each capped at
    ``SINGLE_GAP_CAP``, which also stands for "none").

    A customer has exactly one order in a period [s, e) of at most ``REPEAT_MAX_PERIOD_DAYS`` days
    when one such row has s <= day < e, gap_before > day - s and gap_after >= e - day: the repeat
    customers are the period's buyers minus those. Compacted from ``DaySingleDelta``."""

    day = models.DateField()
    gap_before = models.SmallIntegerField()
    gap_after = models.SmallIntegerField()
    customers = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "gap_before", "gap_after"], name="day_single_one_per_cell")
        ]

    def __str__(self) -> str:
        return f"{self.day} (-{self.gap_before}/+{self.gap_after}): {self.customers}"


class DaySingleDelta(models.Model):
    """Changes to ``DaySingle`` not yet folded in (append-only)."""

    id = models.BigAutoField(primary_key=True)
    day = models.DateField()
    gap_before = models.SmallIntegerField()
    gap_after = models.SmallIntegerField()
    customers = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.day} (-{self.gap_before}/+{self.gap_after}): {self.customers:+}"


# --- Cohort cells (metrics/cohort_rollups.py) ---------------------------------------------------------


class CohortCell(models.Model):
    """How many customers whose first completed purchase is in store-local month ``cohort_month``
    made their first completed purchase of ``month`` on ``first_day`` (months as their first days;
    ``month = cohort_month`` is the cohort's size). The day lets a matrix that ends inside a month
    count that month up to its end. Kept by the purchase triggers (metrics/cohort_rollup_sql.py),
    compacted from ``CohortCellDelta`` and read together with it; days in the zone ``RollupState``
    records."""

    cohort_month = models.DateField()
    month = models.DateField()
    first_day = models.DateField()
    customers = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cohort_month", "month", "first_day"], name="cohort_cell_one_per_cell")
        ]

    def __str__(self) -> str:
        return f"{self.cohort_month:%Y-%m} in {self.month:%Y-%m}, from {self.first_day}: {self.customers}"


class CohortCellDelta(models.Model):
    """Changes to ``CohortCell`` not yet folded in, appended by the purchase triggers (one row per
    changed cell and writing statement, never updated: concurrent writers never wait on each other)."""

    id = models.BigAutoField(primary_key=True)
    cohort_month = models.DateField()
    month = models.DateField()
    first_day = models.DateField()
    customers = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.cohort_month:%Y-%m} in {self.month:%Y-%m}, from {self.first_day}: {self.customers:+}"


# --- RFM segment counts (metrics/rfm_stored.py) --------------------------------------------------------


class RfmSegmentCount(models.Model):
    """Customers per RFM segment in the latest nightly scores: one row per segment (zeros included),
    written by the refresh in the statement that writes the scores, so a read of the counts never
    groups millions of score rows. No rows: no refresh has run yet."""

    segment = models.CharField(max_length=32, primary_key=True, choices=RfmSegment.choices)
    customers = models.BigIntegerField()
    computed_at = models.DateTimeField(help_text="The scores' as_of")

    def __str__(self) -> str:
        return f"{self.segment}: {self.customers}"


class RfmPagePosition(models.Model):
    """Where a scored customer stands in the RFM pages of the latest nightly scores (by external_id,
    1-based, among every scored customer and within its segment), and its last completed purchase
    before the scores' as_of. A page at any offset is one range of an index, never a sort."""

    customer = models.OneToOneField(Customer, primary_key=True, on_delete=models.CASCADE, related_name="+")
    rfm_segment = models.CharField(max_length=32, choices=RfmSegment.choices)
    position = models.BigIntegerField()
    segment_position = models.BigIntegerField()
    last_purchase_at = models.DateTimeField()

    class Meta:
        # Not unique: the nightly upsert moves positions row by row within one statement.
        indexes = [
            models.Index(fields=["position"], name="rfm_page_position_idx"),
            models.Index(fields=["rfm_segment", "segment_position"], name="rfm_page_segment_position_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: #{self.position}, {self.rfm_segment} #{self.segment_position}"


# --- Figures computed by a worker (metrics/jobs.py) -------------------------------------------------


class MetricsJobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class MetricsJob(models.Model):
    """Figures whose reading means scanning the purchases (a period the rollups cannot answer),
    computed by a worker while the page that asked shows progress; one row per set of parameters."""

    key = models.CharField(max_length=200, unique=True, help_text="What is computed, with its parameters")
    status = models.CharField(max_length=16, choices=MetricsJobStatus.choices, default=MetricsJobStatus.PENDING)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=MetricsJobStatus.values), name="metrics_job_status_valid")
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.status}"
