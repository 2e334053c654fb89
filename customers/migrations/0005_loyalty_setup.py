"""Loyalty: the program's default settings and tiers, the ledger's append-only guard in the
database, staff permissions, and the daily beat schedules."""

from decimal import Decimal

from django.contrib.auth.management import create_permissions
from django.db import migrations

DEFAULT_TIERS = [
    ("bronze", "Bronze", Decimal("0"), Decimal("1")),
    ("silver", "Silver", Decimal("500"), Decimal("1.25")),
    ("gold", "Gold", Decimal("2000"), Decimal("1.5")),
]

LEDGER = "customers_pointsentry"

# PostgreSQL. The column list is every column but "remaining" at the time of this migration, so
# the services' "UPDATE ... SET remaining = ..." never fires the edit trigger (no per-row cost in
# the expiry pass). A migration adding a ledger column should re-create this trigger with it.
PG_FUNCTION = """
CREATE OR REPLACE FUNCTION customers_pointsentry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the points ledger is append-only: entries are never deleted'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_ARGV[0] = 'remaining' THEN
        RAISE EXCEPTION 'a lot''s remaining points only go down (entry %)', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RAISE EXCEPTION 'the points ledger is append-only: entry % cannot be edited; write a new entry', OLD.id
        USING ERRCODE = 'restrict_violation';
END
$$ LANGUAGE plpgsql;
"""
PG_TRIGGERS = """
CREATE TRIGGER customers_pointsentry_no_delete BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION customers_pointsentry_append_only();
CREATE TRIGGER customers_pointsentry_no_edit BEFORE UPDATE OF {columns} ON {table}
    FOR EACH ROW WHEN (({old_row}) IS DISTINCT FROM ({new_row}))
    EXECUTE FUNCTION customers_pointsentry_append_only('edit');
CREATE TRIGGER customers_pointsentry_lots_only_shrink BEFORE UPDATE OF remaining ON {table}
    FOR EACH ROW WHEN (NEW.remaining IS DISTINCT FROM OLD.remaining
                       AND (OLD.remaining IS NULL OR NEW.remaining IS NULL OR NEW.remaining > OLD.remaining))
    EXECUTE FUNCTION customers_pointsentry_append_only('remaining');
"""
PG_DROP = f"""
DROP TRIGGER IF EXISTS customers_pointsentry_no_delete ON {LEDGER};
DROP TRIGGER IF EXISTS customers_pointsentry_no_edit ON {LEDGER};
DROP TRIGGER IF EXISTS customers_pointsentry_lots_only_shrink ON {LEDGER};
DROP FUNCTION IF EXISTS customers_pointsentry_append_only();
"""

def _ledger_columns(apps) -> list[str]:
    model = apps.get_model("customers", "PointsEntry")
    return [field.column for field in model._meta.concrete_fields if field.column != "remaining"]


def add_ledger_guard(apps, schema_editor):
    columns = _ledger_columns(apps)
    quote = schema_editor.quote_name
    # params=None: the SQL holds literal % signs (PL/pgSQL's RAISE), not placeholders.
    schema_editor.execute(PG_FUNCTION, None)
    sql = PG_TRIGGERS.format(
        table=LEDGER,
        columns=", ".join(quote(c) for c in columns),
        old_row=", ".join(f"OLD.{quote(c)}" for c in columns),
        new_row=", ".join(f"NEW.{quote(c)}" for c in columns),
    )
    for statement in sql.split(";\n"):
        if statement.strip():
            schema_editor.execute(statement.strip(), None)


def remove_ledger_guard(apps, schema_editor):
    for statement in PG_DROP.split(";\n"):
        if statement.strip():
            schema_editor.execute(statement.strip(), None)


def create_program(apps, schema_editor):
    LoyaltyProgram = apps.get_model("customers", "LoyaltyProgram")
    LoyaltyTier = apps.get_model("customers", "LoyaltyTier")
    program, created = LoyaltyProgram.objects.get_or_create(id=1)
    if created or not LoyaltyTier.objects.filter(program=program).exists():
        LoyaltyTier.objects.bulk_create(
            [
                LoyaltyTier(program=program, code=code, name=name, threshold=threshold, multiplier=multiplier)
                for code, name, threshold, multiplier in DEFAULT_TIERS
            ]
        )


GROUP_PERMISSIONS = {
    "analyst": ["view_loyaltyprogram", "view_loyaltytier", "view_tierchange"],
    "marketer": [
        "view_loyaltyprogram",
        "change_loyaltyprogram",
        "view_loyaltytier",
        "add_loyaltytier",
        "change_loyaltytier",
        "delete_loyaltytier",
        "view_tierchange",
    ],
    # Support answers customers: point adjustments with a reason.
    "support": ["view_loyaltyprogram", "view_loyaltytier", "view_tierchange", "adjust_points"],
}


def grant_permissions(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="customers", codename__in=codenames))


def seed_schedules(apps, schema_editor):
    from customers.schedules import loyalty_schedules_ensure

    loyalty_schedules_ensure(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        crontab_model=apps.get_model("django_celery_beat", "CrontabSchedule"),
    )


def remove_schedules(apps, schema_editor):
    from customers.schedules import LOYALTY_SCHEDULES

    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[s.name for s in LOYALTY_SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0004_loyalty"),
        ("customers", "0002_staff_groups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_program, migrations.RunPython.noop),
        migrations.RunPython(add_ledger_guard, remove_ledger_guard),
        migrations.RunPython(grant_permissions, migrations.RunPython.noop),
        migrations.RunPython(seed_schedules, remove_schedules),
    ]
