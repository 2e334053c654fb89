"""RFM segment counts and page positions (metrics/rfm_stored.py), and their first fill from the
nightly scores already stored, so reads keep coming from the store until the next refresh."""

import django.db.models.deletion
from django.db import migrations, models

from metrics.rfm_stored import store_sql

# The stored scores with each customer's last completed purchase before their as_of: one probe of
# the (customer, placed_at) index per score. A customer whose purchases have gone since is left
# out (the next refresh drops their score anyway).
SCORED = """
    WITH scored AS MATERIALIZED (
        SELECT * FROM (
            SELECT sc.customer_id AS id, cu.external_id, sc.rfm_segment AS segment,
                   (SELECT MAX(p.placed_at) FROM customers_purchase p
                    WHERE p.customer_id = sc.customer_id AND p.status = 'completed'
                      AND p.placed_at < sc.computed_at) AS last_at
            FROM metrics_customerscore sc JOIN customers_customer cu ON cu.id = sc.customer_id
        ) rows
        WHERE last_at IS NOT NULL
    )
"""
SEGMENTS = [
    ("Champions", "Champions"),
    ("Loyal", "Loyal"),
    ("Potential loyalist", "Potential Loyalist"),
    ("New", "New"),
    ("At risk", "At Risk"),
    ("Cannot lose", "Cannot Lose"),
    ("Hibernating", "Hibernating"),
    ("Lost", "Lost"),
]


def fill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT MAX(computed_at) FROM metrics_customerscore")
        (computed_at,) = cursor.fetchone()
        if computed_at is None:  # never refreshed: reads stay live until the first refresh
            return
        tail, params = store_sql("scored", computed_at=computed_at)
        cursor.execute(SCORED + tail, params)


class Migration(migrations.Migration):
    dependencies = [("metrics", "0005_cohort_cells")]

    operations = [
        migrations.CreateModel(
            name="RfmSegmentCount",
            fields=[
                (
                    "segment",
                    models.CharField(
                        choices=SEGMENTS,
                        max_length=32,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("customers", models.BigIntegerField()),
                ("computed_at", models.DateTimeField(help_text="The scores' as_of")),
            ],
        ),
        migrations.CreateModel(
            name="RfmPagePosition",
            fields=[
                (
                    "customer",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="customers.customer",
                    ),
                ),
                (
                    "rfm_segment",
                    models.CharField(
                        choices=SEGMENTS,
                        max_length=32,
                    ),
                ),
                ("position", models.BigIntegerField()),
                ("segment_position", models.BigIntegerField()),
                ("last_purchase_at", models.DateTimeField()),
            ],
            options={
                "indexes": [
                    models.Index(fields=["position"], name="rfm_page_position_idx"),
                    models.Index(fields=["rfm_segment", "segment_position"], name="rfm_page_segment_position_idx"),
                ],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
    ]
