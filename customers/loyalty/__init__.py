"""Loyalty (SPEC §3), all in one place inside the customers app: ``models.py`` holds the points
ledger (``PointsEntry``), the program's settings, its tiers and the tier history (app label
``customers``; ``customers/models.py`` imports them so the app registry loads them); ``services/``
are the only writers (``program``, ``ledger``, ``tiers``, ``earning``, ``spending``, ``bonuses``,
``daily``); ``selectors.py`` holds the reads (expiring points, a customer's summary and history, the
ledger checks); ``api.py`` is the REST API for balance, redemption and adjustments; ``admin.py`` is
the program's settings page, the tier history and the "adjust points" page. The Celery tasks and
beat schedules stay in ``customers/tasks.py`` and ``customers/schedules.py``.
"""
