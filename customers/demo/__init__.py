"""The demo data set ``manage.py seed_demo`` loads: a shop with two years of customers and orders,
months of campaign history, computed scores and the daily snapshots of the trend chart.

One module per part, run in this order by ``seeding.demo_seed``:

- ``shoppers``: the catalogue, customers with consents and purchase rhythms, their carts, and the
  plan of their orders and survey answers (drawn from one seeded random generator);
- ``history``: the orders recorded through the purchase services, then the campaigns replayed day
  by day through the campaign services (evaluate, send), with the customers' responses;
- ``figures``: the nightly metrics jobs, run once: scores (RFM, churn risk) and daily snapshots.
"""

from customers.demo.seeding import DEMO_PREFIX, DemoOptions, StageReport, demo_exists, demo_seed

__all__ = ["DEMO_PREFIX", "DemoOptions", "StageReport", "demo_exists", "demo_seed"]
