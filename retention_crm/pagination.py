"""Counts for lists of millions of rows: counted up to a cap and shown as "10,000+" beyond it.

A plain ``COUNT(*)`` reads every row the filters leave (seconds on 100M purchases) on every page
load; counting ``LIMIT cap + 1`` rows stops at the cap and still tells "more than the cap" apart.
"""

from collections.abc import Callable
from math import ceil
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property
from rest_framework.request import Request
from rest_framework.response import Response

from retention_crm.api.pagination import Pagination

DEFAULT_COUNT_CAP = 10_000


def count_cap() -> int:
    """How far lists count (setting ``LIST_COUNT_CAP``)."""
    return int(getattr(settings, "LIST_COUNT_CAP", DEFAULT_COUNT_CAP))


class CappedCount(int):
    """A row count that stopped at a cap: its value is at most cap + 1, and it reads "10,000+" when
    over the cap, wherever the admin prints it (pagination, search and action counters)."""

    cap: int

    def __new__(cls, value: int, cap: int) -> "CappedCount":
        count = super().__new__(cls, min(value, cap + 1))
        count.cap = cap
        return count

    @property
    def is_capped(self) -> bool:
        return int(self) > self.cap

    def __str__(self) -> str:
        return f"{self.cap:,}+" if self.is_capped else int.__str__(self)

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else int.__format__(self, spec)


def capped_count(queryset: QuerySet[Any, Any], cap: int | None = None) -> CappedCount:
    """``SELECT count(*) FROM (<queryset> LIMIT cap + 1)``: no sort, no annotations, only the pk."""
    cap = count_cap() if cap is None else cap
    rows = queryset.order_by().values("pk")[: cap + 1]
    return CappedCount(rows.count(), cap)


class CappedCountPaginator(Paginator):
    """The admin's paginator for large lists: pages up to the cap, each page one indexed read."""

    object_list: QuerySet[Any, Any]  # the admin's changelists page querysets

    @cached_property
    def count(self) -> CappedCount:
        return capped_count(self.object_list)

    @cached_property
    def num_pages(self) -> int:
        count = self.count
        if count == 0 and not self.allow_empty_first_page:
            return 0
        hits = count.cap if count.is_capped else max(1, count - self.orphans)
        return ceil(hits / self.per_page)

    def page(self, number: Any) -> Page:
        page = super().page(number)
        if self.count.is_capped:  # the row past the cap only told that there are more
            page.object_list = page.object_list[: self.count.cap - (page.number - 1) * self.per_page]
        return page


class IndexedOrderChangeList(ChangeList):
    """A changelist that sorts only by the columns in ``sortable_by``: a hand-written ``?o=`` for
    another column is ignored like an unknown one, instead of sorting the whole table."""

    def get_ordering_field(self, field_name: Callable[..., Any] | str) -> Any:
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class CappedCountAdminMixin:
    """For a changelist over a table that grows with customers or purchases: capped count, no
    second count of the unfiltered table, and sorting only by ``sortable_by``."""

    paginator: ClassVar[type[Paginator]] = CappedCountPaginator
    show_full_result_count: ClassVar[bool] = False

    def get_changelist(self, request: Any, **kwargs: Any) -> type[ChangeList]:
        return IndexedOrderChangeList


class CappedCountPagination(Pagination):
    """The API's limit/offset page with the count capped: ``count`` is exact up to the cap, and
    ``count_capped`` says when there are more. ``next`` comes from reading one row past the page,
    so paging on beyond the cap still works."""

    # Set by paginate_queryset before anything reads them.
    limit: int
    offset: int
    count: int
    capped: CappedCount
    has_next: bool

    def paginate_queryset(self, queryset: QuerySet[Any, Any], request: Request, view: Any = None) -> list[Any] | None:
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.offset = self.get_offset(request)
        self.request = request
        self.capped = capped_count(queryset)
        rows = list(queryset[self.offset : self.offset + self.limit + 1])
        self.has_next = len(rows) > self.limit
        self.count = min(int(self.capped), self.capped.cap)
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        return rows[: self.limit]

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        # The parent builds the link from the count; with one row seen past the page it exists.
        count, self.count = self.count, self.offset + self.limit + 1
        try:
            return super().get_next_link()
        finally:
            self.count = count

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response(
            {
                "count": self.count,
                "count_capped": self.capped.is_capped,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count_capped"] = {"type": "boolean", "example": False}
        return response
