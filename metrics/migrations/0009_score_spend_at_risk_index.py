"""The lifecycle board's order (metrics/board.py): within a segment, the most spend at risk first.

An expression index, so the board reads the first page of a segment of millions as one short
index range instead of sorting the segment per request. Raw SQL because the expression is not a
model field; built concurrently so the nightly score refresh is not blocked while it builds.
"""

from django.db import migrations

# Written out, not imported: a migration must not change when the code does. metrics/board.py
# orders by the same expression (its tests check that the planner picks this index).
INDEX = "score_segment_spend_at_risk_idx"
EXPRESSION = "(monetary::double precision * churn_risk)"


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction
    dependencies = [("metrics", "0008_merged_purchase_triggers")]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} "
            f"ON metrics_customerscore (rfm_segment, {EXPRESSION}, customer_id)",
            reverse_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}",
        ),
    ]
