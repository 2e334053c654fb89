"""The points ledger stays append-only, with one exception: an erasure may blank the reasons staff
typed (SPEC §8: erase leaves no personal data, and a free-text reason may name the person).

The edit guard of 0005 is re-created so that a change of ``reason`` alone passes only inside a
transaction that set ``retention_crm.erasure`` to ``on`` (``SET LOCAL``, which the erase service
does); every other edit is refused as before.
"""

from django.db import migrations

LEDGER = "customers_pointsentry"
TRIGGER = "customers_pointsentry_no_edit"

GUARD = """
CREATE TRIGGER {trigger} BEFORE UPDATE OF {columns} ON {table}
    FOR EACH ROW WHEN (({old_row}) IS DISTINCT FROM ({new_row}){reason_rule})
    EXECUTE FUNCTION customers_pointsentry_append_only('edit')
"""
REASON_RULE = (
    " OR (OLD.reason IS DISTINCT FROM NEW.reason"
    " AND current_setting('retention_crm.erasure', true) IS DISTINCT FROM 'on')"
)


def _guard(apps, schema_editor, *, erasable_reason: bool) -> None:
    model = apps.get_model("customers", "PointsEntry")
    quote = schema_editor.quote_name
    columns = [field.column for field in model._meta.concrete_fields if field.column != "remaining"]
    compared = [column for column in columns if not (erasable_reason and column == "reason")]
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {LEDGER}", None)
    sql = GUARD.format(
        trigger=TRIGGER,
        table=LEDGER,
        columns=", ".join(quote(c) for c in columns),
        old_row=", ".join(f"OLD.{quote(c)}" for c in compared),
        new_row=", ".join(f"NEW.{quote(c)}" for c in compared),
        reason_rule=REASON_RULE if erasable_reason else "",
    )
    schema_editor.execute(sql.strip(), None)


def allow_erasing_reasons(apps, schema_editor):
    _guard(apps, schema_editor, erasable_reason=True)


def refuse_every_edit(apps, schema_editor):
    _guard(apps, schema_editor, erasable_reason=False)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0011_last_purchase_order_index"),
    ]

    operations = [migrations.RunPython(allow_erasing_reasons, refuse_every_edit)]
