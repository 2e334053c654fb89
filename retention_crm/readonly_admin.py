"""The admin's view-only pages: history and derived data that must never change from the UI."""

from typing import Any

from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """View only, for everybody (superusers too): no add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
