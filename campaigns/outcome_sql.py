"""The campaign report's figures, kept exact by the database (SQL text only).

The report (SPEC §5, campaign impact) reads every member's purchases: conversion within the
attribution window, revenue of the purchases in a group's windows, activity 30 and 90 days after
the message, attributed purchases. Three tables keep what it needs:

* ``campaigns_messageoutcome``: a row per message that is a *member* (touched, sent or held out) or
  has attributions. ``converted``: a completed purchase in its own window (steps, variants). On
  the customer's first member message of a group (``group_first``): whether any window of the
  group holds a completed purchase, and their total, each purchase once. On the customer's first
  member message of the campaign (``campaign_first``): whether the customer was active (a
  completed purchase in the 90 days before) at +30 and +90 days; whether a checkpoint has come is
  the reader's question (``now``), the flag is current at any time. Attributed completed
  purchases and their revenue.
* ``campaigns_reporttotal``: what those rows add up to per (campaign, group, step, variant, minute
  of the touch). Writers append the difference they made; a campaign's report sums its rows.
* ``campaigns_messagecount``: messages per (campaign, status, reason, step), appended the same way.

Kept by triggers, not by the services, so every writer counts: one statement-level trigger per
INSERT, UPDATE and DELETE on purchases, messages and attributions, and on a change of a campaign's
``attribution_days``. Each recomputes the outcome rows of the touched customers from their own
messages and purchases (``campaigns_outcomes_refresh``) after locking those customers (the lock
the purchase path takes anyway), so that two writers of one customer never both miss each other's
change, and appends the difference to the totals. A purchase of a customer without outcome rows
costs one index probe. Now and then a writer folds a campaign's appended rows into one per key
(``campaigns_report_compact``); sums do not change, so readers see the same figures either way.

The functions run with ``jit = off``: their statements are small per call, but the planner cannot
see into transition tables and CTEs, and a JIT compilation it then starts costs more than the work.

Days are 24 hours (``interval '24 hours'``): what the report's live statements compute in the
application's UTC sessions, whatever zone the writing session is in.
"""

MEMBER_STATUSES = "('sent', 'delivered', 'opened', 'clicked', 'held_out')"

# The report totals: per (campaign, group, step, variant, minute of the touch), what the campaign's
# outcome rows add up to. The minute lets a reader tell which checkpoints have come.
TOTAL_KEY = "campaign_id, treated, step_key, variant_key, touched_minute"
TOTAL_FIGURES = (
    "customers",
    "converted",
    "revenue",
    "attributed_purchases",
    "attributed_revenue",
    "first_members",
    "active_30",
    "active_90",
    "sent",
    "sent_converted",
)
TOTAL_COLUMNS = f"{TOTAL_KEY}, {', '.join(TOTAL_FIGURES)}"
# A difference row that changes nothing is not appended.
NONZERO = (
    f"({', '.join(f'd.{figure}' for figure in TOTAL_FIGURES)})"
    f" IS DISTINCT FROM ({', '.join('0' for _ in TOTAL_FIGURES)})"
)
# Minutes from a fixed origin, whatever the session's time zone.
MINUTE_ORIGIN = "timestamptz '2000-01-01 00:00:00+00'"
# Every this-many-th write (on average) folds its campaigns' appended rows.
COMPACT_CHANCE = "0.02"

REFRESH_FUNCTION = f"""
CREATE OR REPLACE FUNCTION campaigns_outcomes_refresh(customer_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    IF customer_ids IS NULL OR cardinality(customer_ids) = 0 THEN
        RETURN;
    END IF;
    -- Writers of one customer queue up here; the next statement sees what they committed.
    PERFORM 1 FROM customers_customer WHERE id = ANY(customer_ids) ORDER BY id FOR NO KEY UPDATE;
    WITH messages AS (
        SELECT m.id, m.campaign_id, m.customer_id, m.status <> 'held_out' AS treated,
               (m.touched_at IS NOT NULL AND m.status IN {MEMBER_STATUSES}) AS member,
               m.step_key, m.variant_key, m.touched_at, k.attribution_days * interval '24 hours' AS win
        FROM campaigns_message m JOIN campaigns_campaign k ON k.id = m.campaign_id
        WHERE m.customer_id = ANY(customer_ids)
    ),
    members AS (
        SELECT g.*,
               row_number() OVER (PARTITION BY g.campaign_id, g.customer_id, g.treated
                                  ORDER BY g.touched_at, g.id) = 1 AS group_first,
               row_number() OVER (PARTITION BY g.campaign_id, g.customer_id ORDER BY g.touched_at, g.id) = 1
                   AS campaign_first
        FROM messages g WHERE g.member
    ),
    in_window AS (
        SELECT mb.id AS message_id, mb.campaign_id, mb.customer_id, mb.treated, p.id AS purchase_id, p.total
        FROM members mb
        JOIN customers_purchase p ON p.customer_id = mb.customer_id AND p.status = 'completed'
             AND p.placed_at >= mb.touched_at AND p.placed_at < mb.touched_at + mb.win
    ),
    converted AS (SELECT DISTINCT message_id FROM in_window),
    -- A purchase inside two windows of one customer's group counts once.
    group_totals AS (
        SELECT d.campaign_id, d.customer_id, d.treated, sum(d.total) AS revenue
        FROM (SELECT DISTINCT campaign_id, customer_id, treated, purchase_id, total FROM in_window) d
        GROUP BY 1, 2, 3
    ),
    -- Per message through the attribution's message index, whatever the planner guesses of the CTE.
    attributed AS (
        SELECT g.id AS message_id, a.purchases, a.revenue
        FROM messages g
        CROSS JOIN LATERAL (
            SELECT count(*) AS purchases, sum(p.total) AS revenue
            FROM campaigns_attribution a
            JOIN customers_purchase p ON p.id = a.purchase_id AND p.status = 'completed'
            WHERE a.message_id = g.id
        ) a
        WHERE a.purchases > 0
    ),
    fresh AS (
        SELECT g.id AS message_id, g.campaign_id, g.customer_id, g.treated, g.member, g.step_key,
               g.variant_key, g.touched_at,
               coalesce(mb.group_first, false) AS group_first,
               coalesce(mb.campaign_first, false) AS campaign_first,
               c.message_id IS NOT NULL AS converted,
               coalesce(mb.group_first, false) AND gt.revenue IS NOT NULL AS group_converted,
               CASE WHEN mb.group_first THEN coalesce(gt.revenue, 0) ELSE 0 END AS group_revenue,
               coalesce(mb.campaign_first, false) AND EXISTS (
                   SELECT 1 FROM customers_purchase p
                   WHERE p.customer_id = g.customer_id AND p.status = 'completed'
                     AND p.placed_at >= g.touched_at - 60 * interval '24 hours'
                     AND p.placed_at < g.touched_at + 30 * interval '24 hours') AS active_30,
               coalesce(mb.campaign_first, false) AND EXISTS (
                   SELECT 1 FROM customers_purchase p
                   WHERE p.customer_id = g.customer_id AND p.status = 'completed'
                     AND p.placed_at >= g.touched_at
                     AND p.placed_at < g.touched_at + 90 * interval '24 hours') AS active_90,
               coalesce(a.purchases, 0) AS attributed_purchases,
               coalesce(a.revenue, 0) AS attributed_revenue
        FROM messages g
        LEFT JOIN members mb ON mb.id = g.id
        LEFT JOIN converted c ON c.message_id = g.id
        LEFT JOIN group_totals gt ON mb.group_first AND gt.campaign_id = g.campaign_id
             AND gt.customer_id = g.customer_id AND gt.treated = g.treated
        LEFT JOIN attributed a ON a.message_id = g.id
        WHERE g.member OR a.message_id IS NOT NULL
    ),
    old AS (SELECT * FROM campaigns_messageoutcome o WHERE o.customer_id = ANY(customer_ids)),
    gone AS (
        DELETE FROM campaigns_messageoutcome o
        WHERE o.customer_id = ANY(customer_ids) AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.message_id = o.message_id)
    ),
    kept AS (
        INSERT INTO campaigns_messageoutcome AS o (
            message_id, campaign_id, customer_id, treated, member, step_key, variant_key, touched_at, group_first,
            campaign_first, converted, group_converted, group_revenue, active_30, active_90, attributed_purchases,
            attributed_revenue)
        SELECT * FROM fresh
        ON CONFLICT (message_id) DO UPDATE SET
            campaign_id = EXCLUDED.campaign_id, customer_id = EXCLUDED.customer_id, treated = EXCLUDED.treated,
            member = EXCLUDED.member, step_key = EXCLUDED.step_key, variant_key = EXCLUDED.variant_key,
            touched_at = EXCLUDED.touched_at, group_first = EXCLUDED.group_first,
            campaign_first = EXCLUDED.campaign_first, converted = EXCLUDED.converted,
            group_converted = EXCLUDED.group_converted, group_revenue = EXCLUDED.group_revenue,
            active_30 = EXCLUDED.active_30, active_90 = EXCLUDED.active_90,
            attributed_purchases = EXCLUDED.attributed_purchases, attributed_revenue = EXCLUDED.attributed_revenue
        -- An unchanged row is not rewritten: most purchases move no figure.
        WHERE (o.campaign_id, o.customer_id, o.treated, o.member, o.step_key, o.variant_key, o.touched_at,
               o.group_first, o.campaign_first, o.converted, o.group_converted, o.group_revenue, o.active_30,
               o.active_90, o.attributed_purchases, o.attributed_revenue)
              IS DISTINCT FROM
              (EXCLUDED.campaign_id, EXCLUDED.customer_id, EXCLUDED.treated, EXCLUDED.member, EXCLUDED.step_key,
               EXCLUDED.variant_key, EXCLUDED.touched_at, EXCLUDED.group_first, EXCLUDED.campaign_first,
               EXCLUDED.converted, EXCLUDED.group_converted, EXCLUDED.group_revenue, EXCLUDED.active_30,
               EXCLUDED.active_90, EXCLUDED.attributed_purchases, EXCLUDED.attributed_revenue)
    ),
    -- What the rows add to their campaign's figures now, minus what they added before.
    changes AS (
        SELECT 1 AS sign, * FROM fresh
        UNION ALL
        SELECT -1, o.message_id, o.campaign_id, o.customer_id, o.treated, o.member, o.step_key, o.variant_key,
               o.touched_at, o.group_first, o.campaign_first, o.converted, o.group_converted, o.group_revenue,
               o.active_30, o.active_90, o.attributed_purchases, o.attributed_revenue
        FROM old o
    )
    INSERT INTO campaigns_reporttotal ({TOTAL_COLUMNS})
    SELECT d.* FROM (
        SELECT x.campaign_id, x.treated, x.step_key, x.variant_key,
               date_bin('1 minute', x.touched_at, {MINUTE_ORIGIN}) AS touched_minute,
               sum(x.sign * x.group_first::int) AS customers, sum(x.sign * x.group_converted::int) AS converted,
               sum(x.sign * x.group_revenue) AS revenue, sum(x.sign * x.attributed_purchases) AS attributed_purchases,
               sum(x.sign * x.attributed_revenue) AS attributed_revenue,
               sum(x.sign * x.campaign_first::int) AS first_members,
               sum(x.sign * (x.campaign_first AND x.active_30)::int) AS active_30,
               sum(x.sign * (x.campaign_first AND x.active_90)::int) AS active_90,
               sum(x.sign * (x.member AND x.treated)::int) AS sent,
               sum(x.sign * (x.member AND x.treated AND x.converted)::int) AS sent_converted
        FROM changes x
        GROUP BY 1, 2, 3, 4, 5
    ) d
    WHERE {NONZERO};
    -- Now and then, fold the campaigns' appended differences into one row per key.
    IF random() < {COMPACT_CHANCE} THEN
        PERFORM campaigns_report_compact(ARRAY(
            SELECT DISTINCT o.campaign_id FROM campaigns_messageoutcome o WHERE o.customer_id = ANY(customer_ids)));
    END IF;
END
$$;
"""

# Purchases: a purchase moves a figure only through a customer's outcome rows (a member message
# or an attribution makes them first), and a member's only when placed from 60 days before its
# touch (the +30 checkpoint's 90 days) to the later of +90 days and its window's end. An UPDATE
# counts only through the columns the figures read, at the old place and the new.
# The probe reads outcome rows current under the customers' locks: these triggers fire after
# purchase_days_* (same event: by name), which has locked the customers. A LATERAL probe with
# LIMIT 1: a nested loop over the customer index whatever the planner guesses of the transition table.
_PURCHASE_MATTERS = """
    CROSS JOIN LATERAL (
        SELECT 1 FROM campaigns_messageoutcome o JOIN campaigns_campaign k ON k.id = o.campaign_id
        WHERE o.customer_id = {row}.customer_id
          AND (NOT o.member
               OR ({row}.placed_at >= o.touched_at - 60 * interval '24 hours'
                   AND {row}.placed_at < o.touched_at + greatest(90, k.attribution_days) * interval '24 hours'))
        LIMIT 1
    ) AS matters_{row}
"""
_PURCHASE_MOVED = """
    (d.customer_id, d.placed_at, d.status, d.total) IS DISTINCT FROM (n.customer_id, n.placed_at, n.status, n.total)
"""

PURCHASE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION campaigns_outcomes_purchases_changed() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT n.customer_id) INTO ids FROM new_rows n {_PURCHASE_MATTERS.format(row="n")};
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT d.customer_id) INTO ids FROM old_rows d {_PURCHASE_MATTERS.format(row="d")};
    ELSE
        SELECT array_agg(DISTINCT x.customer_id) INTO ids
        FROM (
            SELECT d.customer_id FROM old_rows d JOIN new_rows n ON n.id = d.id {_PURCHASE_MATTERS.format(row="d")}
            WHERE {_PURCHASE_MOVED}
            UNION
            SELECT n.customer_id FROM old_rows d JOIN new_rows n ON n.id = d.id {_PURCHASE_MATTERS.format(row="n")}
            WHERE {_PURCHASE_MOVED}
        ) x;
    END IF;
    PERFORM campaigns_outcomes_refresh(ids);
    RETURN NULL;
END
$$;
"""

# Messages: the counts per (status, reason, step) take what a statement added minus what it took
# away. The outcomes change when a message is or was a member, or already has a row (attributions);
# a claim (queued -> sending) or a suppression costs a primary-key probe.
_COUNT_CHANGES = """
    INSERT INTO campaigns_messagecount (campaign_id, status, reason, step_key, messages)
    SELECT x.campaign_id, x.status, x.reason, x.step_key, sum(x.n)
    FROM ({rows}) x
    GROUP BY 1, 2, 3, 4
    HAVING sum(x.n) <> 0;
"""
_ADDED = "SELECT n.campaign_id, n.status, n.reason, n.step_key, 1 AS n FROM new_rows n"
_REMOVED = "SELECT d.campaign_id, d.status, d.reason, d.step_key, -1 AS n FROM old_rows d"

MESSAGE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION campaigns_outcomes_messages_changed() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_COUNT_CHANGES.format(rows=_ADDED)}
        SELECT array_agg(DISTINCT n.customer_id) INTO ids FROM new_rows n
        WHERE n.touched_at IS NOT NULL AND n.status IN {MEMBER_STATUSES};
    ELSIF TG_OP = 'DELETE' THEN
        {_COUNT_CHANGES.format(rows=_REMOVED)}
        SELECT array_agg(DISTINCT d.customer_id) INTO ids FROM old_rows d
        WHERE EXISTS (SELECT 1 FROM campaigns_messageoutcome o WHERE o.message_id = d.id);
    ELSE
        {_COUNT_CHANGES.format(rows=_ADDED + " UNION ALL " + _REMOVED)}
        SELECT array_agg(DISTINCT x.customer_id) INTO ids
        FROM (
            SELECT unnest(ARRAY[d.customer_id, n.customer_id]) AS customer_id
            FROM old_rows d FULL JOIN new_rows n ON n.id = d.id
            WHERE (d.campaign_id, d.customer_id, d.status, d.touched_at, d.step_key, d.variant_key)
                  IS DISTINCT FROM (n.campaign_id, n.customer_id, n.status, n.touched_at, n.step_key, n.variant_key)
              AND ((d.touched_at IS NOT NULL AND d.status IN {MEMBER_STATUSES})
                   OR (n.touched_at IS NOT NULL AND n.status IN {MEMBER_STATUSES})
                   OR EXISTS (SELECT 1 FROM campaigns_messageoutcome o WHERE o.message_id IN (d.id, n.id)))
        ) x
        WHERE x.customer_id IS NOT NULL;
    END IF;
    PERFORM campaigns_outcomes_refresh(ids);
    IF random() < {COMPACT_CHANCE} THEN
        IF TG_OP = 'DELETE' THEN
            PERFORM campaigns_report_compact(ARRAY(SELECT DISTINCT d.campaign_id FROM old_rows d));
        ELSE
            PERFORM campaigns_report_compact(ARRAY(SELECT DISTINCT n.campaign_id FROM new_rows n));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
"""

# Folding a campaign's appended rows into one per key: the sums do not change, so a reader sees
# the same figures before and after. One folder per campaign at a time (the others skip it), and
# only folders delete rows: writers never wait on them.
COMPACT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION campaigns_report_compact(campaign_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    ids bigint[];
BEGIN
    SELECT array_agg(c) INTO ids FROM unnest(campaign_ids) AS c
    WHERE pg_try_advisory_xact_lock(hashtext('campaigns_report_compact'), (c % 2147483647)::int);
    IF ids IS NULL THEN
        RETURN;
    END IF;
    -- Minutes whose +90-day checkpoint is past (by a day: the application's clock may differ
    -- from the database's) fold into one: only which checkpoints have come needs the minute, and
    -- for them both have. A campaign sending all year so keeps about 90 days of minutes.
    WITH gone AS (DELETE FROM campaigns_reporttotal t WHERE t.campaign_id = ANY(ids) RETURNING t.*),
    keyed AS (
        SELECT g.*,
               CASE WHEN g.touched_minute + interval '1 minute' + 91 * interval '24 hours' <= now()
                    THEN timestamptz '-infinity' ELSE g.touched_minute END AS minute_
        FROM gone g
    )
    INSERT INTO campaigns_reporttotal ({TOTAL_COLUMNS})
    SELECT d.* FROM (
        SELECT campaign_id, treated, step_key, variant_key, minute_,
               {", ".join(f"sum({figure}) AS {figure}" for figure in TOTAL_FIGURES)}
        FROM keyed GROUP BY campaign_id, treated, step_key, variant_key, minute_
    ) d
    WHERE {NONZERO};
    WITH gone AS (DELETE FROM campaigns_messagecount c WHERE c.campaign_id = ANY(ids) RETURNING c.*)
    INSERT INTO campaigns_messagecount (campaign_id, status, reason, step_key, messages)
    SELECT campaign_id, status, reason, step_key, sum(messages) FROM gone
    GROUP BY 1, 2, 3, 4 HAVING sum(messages) <> 0;
END
$$;
"""

ATTRIBUTION_FUNCTION = """
CREATE OR REPLACE FUNCTION campaigns_outcomes_attributions_changed() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT m.customer_id) INTO ids
        FROM new_rows a JOIN campaigns_message m ON m.id = a.message_id;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT o.customer_id) INTO ids
        FROM old_rows a JOIN campaigns_messageoutcome o ON o.message_id = a.message_id;
    ELSE
        SELECT array_agg(DISTINCT x.customer_id) INTO ids FROM (
            SELECT m.customer_id FROM new_rows a JOIN campaigns_message m ON m.id = a.message_id
            UNION ALL
            SELECT o.customer_id FROM old_rows a JOIN campaigns_messageoutcome o ON o.message_id = a.message_id
        ) x;
    END IF;
    PERFORM campaigns_outcomes_refresh(ids);
    RETURN NULL;
END
$$;
"""

# A new attribution window moves every member's figures: rare, and recomputed at once.
CAMPAIGN_FUNCTION = """
CREATE OR REPLACE FUNCTION campaigns_outcomes_window_changed() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    ids bigint[];
BEGIN
    SELECT array_agg(DISTINCT o.customer_id) INTO ids
    FROM campaigns_messageoutcome o
    WHERE o.campaign_first AND o.campaign_id IN (
        SELECT n.id FROM new_rows n JOIN old_rows d ON d.id = n.id WHERE n.attribution_days <> d.attribution_days);
    PERFORM campaigns_outcomes_refresh(ids);
    RETURN NULL;
END
$$;
"""


# The counts of the existing messages, then the outcomes (and so the totals) of every customer with
# a member message or an attribution, in one set-based call each; then one row per key.
FILL = f"""
    INSERT INTO campaigns_messagecount (campaign_id, status, reason, step_key, messages)
    SELECT m.campaign_id, m.status, m.reason, m.step_key, count(*) FROM campaigns_message m GROUP BY 1, 2, 3, 4;
    PERFORM campaigns_outcomes_refresh(ARRAY(
        SELECT DISTINCT m.customer_id FROM campaigns_message m
        WHERE (m.touched_at IS NOT NULL AND m.status IN {MEMBER_STATUSES})
           OR EXISTS (SELECT 1 FROM campaigns_attribution a WHERE a.message_id = m.id)
    ));
    PERFORM campaigns_report_compact(ARRAY(SELECT id FROM campaigns_campaign));
"""

# TRUNCATE of purchases, messages or attributions (a reload, CASCADE included) fires no row
# trigger: everything kept is rebuilt from what is left.
TRUNCATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION campaigns_outcomes_truncated() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    -- DELETE, not TRUNCATE: the statement that fired this may be truncating these tables too.
    DELETE FROM campaigns_messageoutcome;
    DELETE FROM campaigns_reporttotal;
    DELETE FROM campaigns_messagecount;
    {FILL}
    RETURN NULL;
END
$$;
"""

FILL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION campaigns_outcomes_fill() RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    {FILL}
END
$$;
"""


def _triggers(table: str, prefix: str, function: str, operations: tuple[str, ...]) -> str:
    """One statement-level trigger per operation, with the transition tables it needs."""
    tables = {
        "INSERT": "REFERENCING NEW TABLE AS new_rows",
        "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "DELETE": "REFERENCING OLD TABLE AS old_rows",
    }
    return "\n".join(
        f"CREATE TRIGGER {prefix}_{op.lower()} AFTER {op} ON {table} {tables[op]} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}();"
        for op in operations
    )


ALL_OPERATIONS = ("INSERT", "UPDATE", "DELETE")
TRIGGERS = "\n".join(
    [
        _triggers("customers_purchase", "purchase_outcomes", "campaigns_outcomes_purchases_changed", ALL_OPERATIONS),
        _triggers("campaigns_message", "message_outcomes", "campaigns_outcomes_messages_changed", ALL_OPERATIONS),
        _triggers(
            "campaigns_attribution", "attribution_outcomes", "campaigns_outcomes_attributions_changed", ALL_OPERATIONS
        ),
        _triggers("campaigns_campaign", "campaign_outcomes", "campaigns_outcomes_window_changed", ("UPDATE",)),
        *(
            f"CREATE TRIGGER {prefix}_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION campaigns_outcomes_truncated();"
            for table, prefix in (
                ("customers_purchase", "purchase_outcomes"),
                ("campaigns_message", "message_outcomes"),
                ("campaigns_attribution", "attribution_outcomes"),
            )
        ),
    ]
)

INSTALL = "\n".join(
    [
        COMPACT_FUNCTION,
        REFRESH_FUNCTION,
        FILL_FUNCTION,
        TRUNCATE_FUNCTION,
        PURCHASE_FUNCTION,
        MESSAGE_FUNCTION,
        ATTRIBUTION_FUNCTION,
        CAMPAIGN_FUNCTION,
        TRIGGERS,
    ]
)

UNINSTALL = """
DROP TRIGGER IF EXISTS purchase_outcomes_insert ON customers_purchase;
DROP TRIGGER IF EXISTS purchase_outcomes_update ON customers_purchase;
DROP TRIGGER IF EXISTS purchase_outcomes_delete ON customers_purchase;
DROP TRIGGER IF EXISTS message_outcomes_insert ON campaigns_message;
DROP TRIGGER IF EXISTS message_outcomes_update ON campaigns_message;
DROP TRIGGER IF EXISTS message_outcomes_delete ON campaigns_message;
DROP TRIGGER IF EXISTS attribution_outcomes_insert ON campaigns_attribution;
DROP TRIGGER IF EXISTS attribution_outcomes_update ON campaigns_attribution;
DROP TRIGGER IF EXISTS attribution_outcomes_delete ON campaigns_attribution;
DROP TRIGGER IF EXISTS campaign_outcomes_update ON campaigns_campaign;
DROP TRIGGER IF EXISTS purchase_outcomes_truncate ON customers_purchase;
DROP TRIGGER IF EXISTS message_outcomes_truncate ON campaigns_message;
DROP TRIGGER IF EXISTS attribution_outcomes_truncate ON campaigns_attribution;
DROP FUNCTION IF EXISTS campaigns_outcomes_truncated();
DROP FUNCTION IF EXISTS campaigns_outcomes_fill();
DROP FUNCTION IF EXISTS campaigns_outcomes_window_changed();
DROP FUNCTION IF EXISTS campaigns_outcomes_attributions_changed();
DROP FUNCTION IF EXISTS campaigns_outcomes_messages_changed();
DROP FUNCTION IF EXISTS campaigns_outcomes_purchases_changed();
DROP FUNCTION IF EXISTS campaigns_outcomes_refresh(bigint[]);
DROP FUNCTION IF EXISTS campaigns_report_compact(bigint[]);
"""

# Filling once (the migration; a rebuild from scratch): the tables are empty.
BACKFILL = "SELECT campaigns_outcomes_fill();"
