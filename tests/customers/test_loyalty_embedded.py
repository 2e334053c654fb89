"""The embedded demo (SQLite, no environment) runs the same loyalty code: a smoke run in a
subprocess, since the suite itself runs on PostgreSQL."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

SCRIPT = """
import datetime as dt
import django
django.setup()
from django.core.management import call_command
from django.db import connection, IntegrityError
from django.utils import timezone
call_command("migrate", verbosity=0)
assert connection.vendor == "sqlite"
from customers.models import Customer, PointsEntry
from customers.services import PurchaseInput, purchase_record, purchase_refund
from customers.services.loyalty import points_adjust, points_redeem
from customers.services.loyalty.daily import points_expire_due, tiers_recompute_all
now = timezone.now()
def buy(ext, total, days):
    purchase_record(data=PurchaseInput.clean(
        {"external_id": ext, "customer": "ada", "placed_at": now - dt.timedelta(days=days), "total": total}))
buy("o-1", "300.00", 360)
buy("o-2", "250.00", 10)
points_redeem(customer="ada", points=120, order_total="1000.00", idempotency_key="k", order_id="o-3")
points_adjust(customer="ada", points=-10, reason="test", idempotency_key="a", actor="t")
assert points_expire_due(now=now + dt.timedelta(days=6)).lots == 1
purchase_refund(external_id="o-2")
tiers_recompute_all()
call_command("loyalty_verify")
try:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE customers_pointsentry SET points = 1")
    raise SystemExit("the ledger took an edit")
except IntegrityError:
    pass
print("balance", Customer.objects.get().points_balance, "entries", PointsEntry.objects.count())
"""


def test_loyalty_runs_on_the_embedded_sqlite_database(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "retention_crm.settings",
        "VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Loyalty ledger OK" in result.stdout
    # Welcome 100; o-1 earns 300 (bronze), o-2 312 (550 spent: silver, x1.25). Redeeming 120 and taking 10
    # come out of o-1's lot, which expires first: its last 170 expire; refunding o-2 takes its 312 back.
    assert "balance 100 entries 7" in result.stdout
