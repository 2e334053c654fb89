# Staff lists at 10M customers / 100M purchases:
# - CustomerSearch, a narrow copy of the searched columns kept by triggers, with prefix (pattern
#   operator class) and trigram indexes; the customer's own email and phone indexes served no query
#   (every read upper-cases the column or uses LIKE) and were written on every purchase.
# - Purchases by (placed_at, id) over all statuses, for the admin's order, replacing the partial
#   index of completed purchases; customer and status ride along for the metric range scans.
# The new table is filled before its indexes are built (one sort each instead of 10M inserts).

import django.contrib.postgres.indexes
import django.db.models.deletion
from django.db import migrations, models

SEARCH_COLUMNS = "customer_id, external_id_upper, email_upper, phone, first_name_upper, last_name_upper"
SEARCH_VALUES = (
    "{row}.id, upper({row}.external_id), upper({row}.email), {row}.phone,"
    " upper({row}.first_name), upper({row}.last_name)"
)
SEARCHED = ("external_id", "email", "phone", "first_name", "last_name")

TRIGGERS = f"""
-- New customers: one statement per insert statement, however many rows (bulk ingest, imports).
CREATE FUNCTION customers_search_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customers_customersearch ({SEARCH_COLUMNS})
    SELECT {SEARCH_VALUES.format(row="inserted")} FROM inserted;
    RETURN NULL;
END
$$;
CREATE TRIGGER customers_search_insert AFTER INSERT ON customers_customer
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION customers_search_insert();

-- Changed customers: only an UPDATE that sets a searched column fires it (a purchase's stats
-- update sets none), and only for a row whose searched values changed (erasure blanks them here).
CREATE FUNCTION customers_search_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customers_customersearch ({SEARCH_COLUMNS})
    VALUES ({SEARCH_VALUES.format(row="NEW")})
    ON CONFLICT (customer_id) DO UPDATE SET
        external_id_upper = EXCLUDED.external_id_upper, email_upper = EXCLUDED.email_upper,
        phone = EXCLUDED.phone, first_name_upper = EXCLUDED.first_name_upper,
        last_name_upper = EXCLUDED.last_name_upper;
    RETURN NULL;
END
$$;
CREATE TRIGGER customers_search_update AFTER UPDATE OF {", ".join(SEARCHED)} ON customers_customer
    FOR EACH ROW
    WHEN ({" OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in SEARCHED)})
    EXECUTE FUNCTION customers_search_update();

-- Creating the triggers locked the customers against writes until commit: nothing is missed.
INSERT INTO customers_customersearch ({SEARCH_COLUMNS})
SELECT {SEARCH_VALUES.format(row="customer")} FROM customers_customer AS customer;
"""

TRIGGERS_DROP = """
DROP TRIGGER customers_search_update ON customers_customer;
DROP TRIGGER customers_search_insert ON customers_customer;
DROP FUNCTION customers_search_update();
DROP FUNCTION customers_search_insert();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0013_erase_permission"),
    ]

    operations = [
        # Kept on the way back: other objects may use the extension by then, and it costs nothing.
        migrations.RunSQL("CREATE EXTENSION IF NOT EXISTS pg_trgm", reverse_sql=migrations.RunSQL.noop),
        migrations.CreateModel(
            name="CustomerSearch",
            fields=[
                (
                    "customer",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="search_row",
                        serialize=False,
                        to="customers.customer",
                    ),
                ),
                ("external_id_upper", models.TextField()),
                ("email_upper", models.TextField()),
                ("phone", models.TextField()),
                ("first_name_upper", models.TextField()),
                ("last_name_upper", models.TextField()),
            ],
        ),
        migrations.RunSQL(TRIGGERS, reverse_sql=TRIGGERS_DROP),
        migrations.AddIndex(
            model_name="customersearch",
            index=models.Index(
                fields=["external_id_upper"], name="customer_search_external_idx", opclasses=["text_pattern_ops"]
            ),
        ),
        migrations.AddIndex(
            model_name="customersearch",
            index=models.Index(
                fields=["email_upper"], name="customer_search_email_idx", opclasses=["text_pattern_ops"]
            ),
        ),
        migrations.AddIndex(
            model_name="customersearch",
            index=models.Index(fields=["phone"], name="customer_search_phone_idx", opclasses=["text_pattern_ops"]),
        ),
        migrations.AddIndex(
            model_name="customersearch",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["first_name_upper", "last_name_upper"],
                name="customer_search_name_idx",
                opclasses=["gin_trgm_ops", "gin_trgm_ops"],
            ),
        ),
        migrations.RemoveIndex(model_name="customer", name="customer_email_idx"),
        migrations.RemoveIndex(model_name="customer", name="customer_phone_idx"),
        migrations.AddIndex(
            model_name="purchase",
            index=models.Index(fields=["placed_at", "id"], include=("customer", "status"), name="purchase_placed_idx"),
        ),
        migrations.RemoveIndex(model_name="purchase", name="purchase_completed_placed_idx"),
    ]
