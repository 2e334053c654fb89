"""One permission per endpoint and method (SPEC §8): for an API key its scope, for a staff session
the Django permission of the same action in the admin, so a session never gets more than the admin
gives the same user.

Views declare both, side by side::

    required_scopes = {"GET": "read", "POST": "write"}
    required_permissions = {"GET": "customers.view_customer", "POST": ("customers.add_x", "customers.change_x")}

A permission may be one name or a tuple of names that are all needed. A method a view declares no
permission for is refused to sessions (403), whatever the user's flags.
"""

from collections.abc import Iterable

from rest_framework.permissions import BasePermission

from retention_crm.api.models import ApiKey


def _method(request) -> str:
    return "GET" if request.method in ("HEAD", "OPTIONS") else request.method


def _serves(view, method: str) -> bool:
    return hasattr(view, method.lower())


def _as_tuple(permissions: str | Iterable[str]) -> tuple[str, ...]:
    return (permissions,) if isinstance(permissions, str) else tuple(permissions)


class ScopePermission(BasePermission):
    """A key needs the view's ``required_scopes[method]``; a staff session its ``required_permissions[method]``."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        method = _method(request)
        if not _serves(view, method):
            return True  # a method the view does not serve: the view answers 405
        if isinstance(request.auth, ApiKey):
            scope = getattr(view, "required_scopes", {}).get(method)
            if scope is None:
                self.message = "This endpoint takes no API key for this method."
                return False
            self.message = f"This API key lacks the '{scope}' scope."
            return scope in request.auth.scopes
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            self.message = "Staff accounts only; the shop's backend uses an API key."
            return False
        declared = getattr(view, "required_permissions", {}).get(method)
        if declared is None:
            self.message = "This endpoint is not open to staff sessions; use an API key."
            return False
        needed = _as_tuple(declared)
        missing = [name for name in needed if not user.has_perm(name)]
        if missing:
            self.message = f"Your staff account lacks the permission {', '.join(missing)}."
            return False
        return True
