"""manage.py import_customers: SPEC §7 (customers with consents; the conventions of import_purchases)."""

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, Entry
from customers import customer_import
from customers.models import Consent, ConsentEvent, Customer, PointsEntry
from customers.services import consent_set, customer_erase, customer_upsert

pytestmark = pytest.mark.django_db

HEADER = (
    "external_id,email,phone,first_name,last_name,birth_date,timezone,tags,attributes,attr.plan,"
    "consent.email,consent.email.at,consent.sms,referred_by,created_at"
)
ANNA = (
    'c-1,anna@example.com,+49 151 1234 5678,Anna,Adams,1990-05-01,Europe/Berlin,vip|newsletter,"{""source"": '
    '""shop"", ""visits"": 3}",gold,yes,2025-01-01T10:00:00Z,no,,2024-02-01T09:00:00+01:00'
)
BEN = "c-2,ben@example.com,,Ben,,,,,,,1,,,c-1,"


def write(tmp_path: Path, *lines: str, name: str = "customers.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes("".join(f"{line}\n" for line in lines).encode(encoding))
    return path


def run(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_customers", str(path), "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def run_failing(path: Path, *args: str) -> tuple[str, str]:
    """The command's output and the message of the CommandError it ends with."""
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("import_customers", str(path), "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue(), str(info.value)


def snapshot() -> dict[str, list]:
    """Everything an import writes, with the times of the last writes."""
    return {
        "customers": list(
            Customer.objects.order_by("external_id").values_list(
                "external_id", "email", "tags", "attributes", "referred_by_id", "created_at", "updated_at"
            )
        ),
        "consents": list(Consent.objects.order_by("id").values_list("customer_id", "channel", "granted", "updated_at")),
        "events": list(ConsentEvent.objects.order_by("id").values_list("id")),
        "points": list(PointsEntry.objects.order_by("id").values_list("id")),
    }


def test_creates_customers_with_every_field_consents_and_history(tmp_path):
    started = timezone.now()

    output = run(write(tmp_path, HEADER, ANNA, BEN))

    assert "created 2, updated 0, unchanged 0, errors 0" in output
    anna = Customer.objects.get(external_id="c-1")
    assert (anna.email, anna.phone, anna.first_name, anna.last_name) == (
        "anna@example.com",
        "+4915112345678",  # the shared phone rule drops the separators
        "Anna",
        "Adams",
    )
    assert (anna.birth_date, anna.timezone) == (dt.date(1990, 5, 1), "Europe/Berlin")
    assert anna.tags == ["vip", "newsletter"]
    assert anna.attributes == {"source": "shop", "visits": 3, "plan": "gold"}  # JSON column and attr. merged
    assert anna.created_at == dt.datetime(2024, 2, 1, 8, 0, tzinfo=dt.UTC)
    consents = {c.channel: c for c in anna.consents.all()}
    assert (consents["email"].granted, consents["email"].source) == (True, "import")
    assert consents["email"].updated_at == dt.datetime(2025, 1, 1, 10, 0, tzinfo=dt.UTC)  # consent.email.at
    assert (consents["sms"].granted, consents["sms"].source) == (False, "import")
    assert consents["sms"].updated_at >= started  # no time given: the import's
    history = list(anna.consent_events.order_by("channel").values_list("channel", "granted", "source", "recorded_at"))
    assert history == [
        ("email", True, "import", dt.datetime(2025, 1, 1, 10, 0, tzinfo=dt.UTC)),
        ("sms", False, "import", consents["sms"].updated_at),
    ]

    ben = Customer.objects.get(external_id="c-2")
    assert ben.referred_by == anna
    assert (ben.timezone, ben.tags, ben.attributes, ben.birth_date) == ("UTC", [], {}, None)  # the defaults
    assert ben.created_at >= started  # signed up now, as customer_upsert would have it
    # The welcome bonus goes with a recent sign-up, as for any customer created in the CRM.
    assert list(PointsEntry.objects.values_list("customer__external_id", "idempotency_key")) == [
        ("c-2", f"bonus:welcome:{ben.pk}")
    ]
    assert ben.points_balance == 100


def test_rerun_stores_nothing_new(tmp_path):
    path = write(tmp_path, HEADER, ANNA, BEN)
    run(path)
    before = snapshot()

    output = run(path)

    assert "created 0, updated 0, unchanged 2, errors 0" in output
    assert snapshot() == before  # no new row version (updated_at), no consent event, no points


def test_rerun_takes_no_row_locks(tmp_path):
    path = write(tmp_path, HEADER, ANNA)
    run(path)

    run(path)

    # A lock is a write too (the row's xmax, a WAL record): unchanged rows are not even locked.
    with connection.cursor() as cursor:
        cursor.execute("SELECT xmax::text FROM customers_customer WHERE external_id = 'c-1'")
        assert cursor.fetchone() == ("0",)
        cursor.execute("SELECT DISTINCT xmax::text FROM customers_consent")
        assert cursor.fetchall() == [("0",)]


def test_update_changes_given_cells_keeps_empty_ones_and_merges_attributes(tmp_path):
    run(write(tmp_path, HEADER, ANNA, BEN))
    anna = Customer.objects.get(external_id="c-1")
    events = ConsentEvent.objects.count()
    changed = write(
        tmp_path,
        "external_id,email,first_name,tags,attr.plan,attr.region,consent.email,consent.sms",
        "c-1,anna@new.example.com,,vip,silver,north,true,yes",
        "c-2,,,,,,,",
        name="changed.csv",
    )

    output = run(changed)

    assert "created 0, updated 1, unchanged 1, errors 0" in output
    anna.refresh_from_db()
    assert anna.email == "anna@new.example.com"
    assert (anna.first_name, anna.last_name, anna.phone) == ("Anna", "Adams", "+4915112345678")  # empty: kept
    assert anna.tags == ["vip"]  # a tags cell replaces the list
    assert anna.attributes == {"source": "shop", "visits": 3, "plan": "silver", "region": "north"}
    # email was granted already: no new event; sms went from no to yes: one.
    assert ConsentEvent.objects.count() == events + 1
    sms = anna.consent_events.filter(channel="sms").order_by("-id").first()
    assert (sms.granted, sms.source) == (True, "import")
    assert Customer.objects.filter(external_id="c-2", referred_by=anna).exists()


def test_consent_changed_by_another_source_is_recorded_again_and_revoking_ends_journeys(tmp_path):
    customer, _ = customer_upsert(external_id="c-7", data={"email": "g@example.com"})
    consent_set(customer=customer, channel="email", granted=True, source="api")
    campaign = Campaign.objects.create(name="Welcome", trigger="welcome", channel="email", body="Hi", status="active")
    entry = Entry.objects.create(
        campaign=campaign, customer=customer, dedupe_key="w", step_key="hello", next_at=timezone.now()
    )

    output = run(write(tmp_path, "external_id,consent.email,consent.email.at", "c-7,no,2026-01-02T03:04:05Z"))

    assert "created 0, updated 1, unchanged 0, errors 0" in output
    consent = Consent.objects.get(customer=customer, channel="email")
    assert (consent.granted, consent.source) == (False, "import")
    assert consent.updated_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert list(customer.consent_events.order_by("id").values_list("granted", "source")) == [
        (True, "api"),
        (False, "import"),
    ]
    entry.refresh_from_db()
    assert (entry.state, entry.exit_reason) == ("exited", "no_consent")


def test_referrer_later_in_the_file_across_batches_and_in_chains(tmp_path):
    customer_upsert(external_id="stored", data={})
    path = write(
        tmp_path,
        "external_id,referred_by",
        "r-1,r-5",  # waits for r-5, which waits for r-6
        "r-2,stored",
        "r-3,r-1",  # waits for r-1
        "r-4,",
        "r-5,r-6",
        "r-6,",
    )

    output = run(path, "--batch-size", "2")

    assert "created 6, updated 0, unchanged 0, errors 0" in output
    referrers = dict(Customer.objects.values_list("external_id", "referred_by__external_id"))
    assert referrers == {
        "stored": None,
        "r-1": "r-5",
        "r-2": "stored",
        "r-3": "r-1",
        "r-4": None,
        "r-5": "r-6",
        "r-6": None,
    }


def test_rows_waiting_for_referrers_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(customer_import, "MAX_WAITING_ROWS", 1)
    path = write(tmp_path, "external_id,referred_by", "w-1,w-9", "w-2,w-9", "w-9,")

    output, _ = run_failing(path, "--batch-size", "1")

    assert "line 3: customer w-2: referred_by: customer 'w-9' is not stored yet, and 1 rows already wait" in output
    assert Customer.objects.get(external_id="w-1").referred_by.external_id == "w-9"
    assert "created 2, updated 0, unchanged 0, errors 1" in output


def test_referral_problems_fail_their_rows_only(tmp_path):
    first, _ = customer_upsert(external_id="first-referrer", data={})
    customer_upsert(external_id="x-1", data={"referred_by": "first-referrer"})
    path = write(
        tmp_path,
        "external_id,email,referred_by",
        "x-1,,x-2",  # already referred: the first referrer keeps the credit
        "x-2,,",
        "x-3,,nobody",
        "x-4,,x-4",
        "x-5,,x-6",  # x-6 fails, so x-5 cannot be linked to it
        "x-6,not-an-email,",
        "x-7,,x-8",  # a cycle of new customers: neither can be stored first
        "x-8,,x-7",
    )

    output, error = run_failing(path)

    assert "line 4: customer x-3: referred_by: no customer with external_id 'nobody', stored or in this file" in output
    assert "line 5: customer x-4: referred_by: a customer cannot refer themselves" in output
    assert "line 6: customer x-5: referred_by: customer 'x-6' (line 7) was not imported; see its error" in output
    assert "line 8: customer x-7: referred_by: the referrals x-7 → x-8 → x-7 form a cycle" in output
    assert "line 9: customer x-8: referred_by: the referrals x-8 → x-7 → x-8 form a cycle" in output
    assert "created 1, updated 0, unchanged 1, errors 6" in output
    assert "6 row(s) failed" in error
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"first-referrer", "x-1", "x-2"}
    assert Customer.objects.get(external_id="x-1").referred_by == first


def test_bad_rows_are_reported_with_line_and_column_and_the_good_ones_import(tmp_path):
    path = write(
        tmp_path,
        "external_id,email,timezone,birth_date,consent.email,attributes",
        "g-1,g1@example.com,Europe/Paris,,yes,",
        "b-1,not-an-email,,,,",
        "b-2,b2@example.com,Mars/Olympus,,,",
        "b-3,b3@example.com,,,maybe,",
        "g-1,again@example.com,,,,",
        "b-4,b4@example.com,,2100-01-01,,",
        'b-5,b5@example.com,,,,"[1, 2]"',
        "b-6,b6@example.com,,,,{oops",
        ",nobody@example.com,,,,",
        "b-7,too,many,cells,here,x,y",
        "g-2,g2@example.com,,,no,",
    )

    output, error = run_failing(path)

    assert set(Customer.objects.values_list("external_id", flat=True)) == {"g-1", "g-2"}
    assert not Consent.objects.filter(customer__external_id__startswith="b-").exists()  # a bad row writes nothing
    assert Customer.objects.get(external_id="g-1").email == "g1@example.com"  # the first line of g-1 counts
    assert "line 3: customer b-1: email: is not a valid email address" in output
    assert "line 4: customer b-2: timezone: must be an IANA time zone name, e.g. Europe/Berlin" in output
    assert "line 5: customer b-3: consent.email: must be true, false, yes, no, 1 or 0" in output
    assert "line 6: customer g-1: external_id: this customer is already on line 2 of this file" in output
    assert "line 7: customer b-4: birth_date: must not be in the future" in output
    assert 'line 8: customer b-5: attributes: must be a JSON object, e.g. {"plan": "gold"}' in output
    assert "line 9: customer b-6: attributes: must be a JSON object" in output
    assert "line 10: customer (no external_id): external_id: must be 1 to 64 characters" in output
    assert "line 11: customer b-7: has 7 cells but the header has 6" in output
    assert "created 2, updated 0, unchanged 0, errors 9" in output
    assert "9 row(s) failed" in error


def test_duplicate_lines_are_refused_across_batches(tmp_path):
    path = write(
        tmp_path, "external_id,first_name", "d-1,First", "d-2,Other", "d-3,Third", "d-1,Second", "d-2,", name="d.csv"
    )

    output, _ = run_failing(path, "--batch-size", "2")

    assert "line 5: customer d-1: external_id: this customer is already on line 2 of this file" in output
    assert "line 6: customer d-2: external_id: this customer is already on line 3 of this file" in output
    assert Customer.objects.get(external_id="d-1").first_name == "First"
    assert "created 3, updated 0, unchanged 0, errors 2" in output


def test_erased_customer_is_refused_per_row(tmp_path):
    customer_upsert(external_id="gone", data={"email": "gone@example.com"})
    customer_erase(external_id="gone", actor="test")

    output, _ = run_failing(
        write(tmp_path, "external_id,email,consent.email", "gone,back@example.com,yes", "new-1,n@example.com,yes")
    )

    assert "line 2: customer gone: external_id: this customer was erased; their record takes no new personal data" in (
        output
    )
    gone = Customer.objects.get(external_id="gone")
    assert gone.email == ""
    assert not gone.consents.filter(granted=True).exists()
    assert "created 1, updated 0, unchanged 0, errors 1" in output


def test_dry_run_writes_nothing_and_reports_what_would_happen(tmp_path):
    run(write(tmp_path, HEADER, ANNA))
    before = snapshot()
    path = write(
        tmp_path,
        "external_id,first_name,referred_by",
        "c-1,Annette,",
        "n-1,New,c-1",
        "n-2,,n-3",  # a referrer later in the file works in a dry run too
        "n-3,,",
        "b-1,,nobody",
        name="dry.csv",
    )

    output, _ = run_failing(path, "--dry-run")

    assert "dry run, nothing written: created 3, updated 1, unchanged 0, errors 1" in output
    assert snapshot() == before
    assert not Customer.objects.filter(external_id__startswith="n-").exists()


def test_errors_csv_lists_every_problem(tmp_path):
    report = tmp_path / "errors.csv"
    path = write(
        tmp_path,
        "client,mail,newsletter",
        "e-1,bad,yes",
        "e-2,e2@example.com,perhaps",
        "e-3,e3@example.com,no",
    )

    run_failing(
        path,
        "--map",
        "external_id=client",
        "--map",
        "email=mail",
        "--map",
        "consent.email=newsletter",
        "--errors-csv",
        str(report),
    )

    with report.open(newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["line", "external_id", "field", "column", "code", "message"]
    assert rows[1:] == [
        ["2", "e-1", "email", "mail", "invalid", "is not a valid email address"],
        [
            "3",
            "e-2",
            "consent.email",
            "newsletter",
            "invalid",
            "must be true, false, yes, no, 1 or 0 (or empty to leave it unchanged)",
        ],
    ]
    assert Consent.objects.get(customer__external_id="e-3").granted is False


def test_mapped_columns_and_delimiter_print_the_files_column_names(tmp_path):
    path = write(tmp_path, "client_no;mail;Plan;optin", "m-1;m1@example.com;gold;1", "m-2;broken;;x")

    output, _ = run_failing(
        path,
        *("--delimiter", ";", "--map", "external_id=client_no", "--map", "email=mail"),
        *("--map", "attr.plan=Plan", "--map", "consent.sms=optin"),
    )

    assert "line 3: customer m-2: mail (email): is not a valid email address" in output
    assert "line 3: customer m-2: optin (consent.sms): must be true, false" in output
    m1 = Customer.objects.get(external_id="m-1")
    assert (m1.email, m1.attributes) == ("m1@example.com", {"plan": "gold"})
    assert m1.consents.get().channel == "sms"


@pytest.mark.parametrize(
    ("header", "args", "message"),
    [
        ("email,first_name", (), "missing required column: external_id"),
        ("external_id,nickname", (), "unknown columns: 'nickname'"),
        ("external_id,consent.fax", (), "unknown consent channel 'fax'"),
        ("external_id,consent.email.at", (), "column for consent.email.at without one for consent.email"),
        ("external_id,email", ("--map", "shoe_size=email"), "'shoe_size': unknown field"),
        ("external_id,email", ("--map", "consent.fax=email"), "'consent.fax': unknown consent channel 'fax'"),
        ("external_id,email", ("--map", "email=mail"), "the file has no column 'mail'"),
        ("external_id,email", ("--delimiter", ";;"), "must be one character"),
        ("external_id,email", ("--batch-size", "0"), "--batch-size must be between 1 and 50,000"),
    ],
)
def test_file_problems_stop_the_command_before_anything_is_written(tmp_path, header, args, message):
    with pytest.raises(CommandError, match=message):
        run(write(tmp_path, header, "c-1,x@example.com"), *args)
    assert not Customer.objects.exists()


def test_unknown_columns_can_be_ignored(tmp_path):
    output = run(write(tmp_path, "external_id,nickname", "i-1,Izzy"), "--ignore-unknown-columns")

    assert "created 1," in output


def test_utf8_byte_order_mark_and_latin1_with_encoding(tmp_path):
    bom = write(tmp_path, "\ufeffexternal_id,first_name", "u-1,Zoë", name="bom.csv")
    latin = write(tmp_path, "external_id,first_name", "l-1,Renée", name="latin.csv", encoding="latin-1")

    assert "created 1," in run(bom)
    with pytest.raises(CommandError, match=r"not valid utf-8 text: byte 0xe9 at byte offset \d+ \(line 2\)"):
        run(latin)
    assert "created 1," in run(latin, "--encoding", "latin-1")

    assert Customer.objects.get(external_id="u-1").first_name == "Zoë"
    assert Customer.objects.get(external_id="l-1").first_name == "Renée"


def test_a_row_the_database_refuses_fails_alone(tmp_path):
    # A rule the Python validation does not know, enforced by PostgreSQL: the batch is written
    # again row by row, so only the refused row fails.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION refuse_blocked_email() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.email = 'blocked@example.com' THEN RAISE EXCEPTION 'blocked address'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_blocked_email BEFORE INSERT OR UPDATE ON customers_customer
                FOR EACH ROW EXECUTE FUNCTION refuse_blocked_email();
            """
        )
    path = write(
        tmp_path,
        "external_id,email,consent.email",
        "f-1,a@example.com,yes",
        "f-2,blocked@example.com,yes",
        "f-3,c@example.com,yes",
    )

    output, _ = run_failing(path)

    assert "line 3: customer f-2: could not be stored: blocked address" in output
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"f-1", "f-3"}
    assert Consent.objects.filter(granted=True).count() == 2
    assert "created 2, updated 0, unchanged 0, errors 1" in output


@pytest.mark.django_db(transaction=True)
def test_a_lost_database_connection_stops_the_import_with_a_message(tmp_path):
    # The server ends this session in the middle of a batch, as a restart would.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION end_session() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.email = 'last@example.com' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER end_session BEFORE INSERT ON customers_customer
                FOR EACH ROW EXECUTE FUNCTION end_session();
            """
        )
    path = write(tmp_path, "external_id,email", "k-1,k1@example.com", "k-2,last@example.com")
    try:
        output, error = run_failing(path)
    finally:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER end_session ON customers_customer; DROP FUNCTION end_session()")

    assert "stopped at a database error (" in error
    assert "Errors" not in output  # not one error per row
    assert "created 0, updated 0, unchanged 0, errors 0" in output


def test_progress_lines_off_a_terminal(tmp_path, capsys):
    path = write(tmp_path, "external_id", "p-1", "p-2")

    call_command("import_customers", str(path), stdout=io.StringIO())

    assert "import_customers: 2 / 2 lines (100 %)" in capsys.readouterr().err
