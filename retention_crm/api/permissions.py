"""Scopes: each endpoint names the scope a key needs. Staff sessions may use every endpoint."""

from rest_framework.permissions import BasePermission

from retention_crm.api.models import ApiKey


class ScopePermission(BasePermission):
    """Views set ``required_scopes = {"GET": "read", "PUT": "write", ...}``."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        scope = view.required_scopes.get(method)
        if isinstance(request.auth, ApiKey):
            if scope is None:
                return True  # a method the view does not serve: the view answers 405
            self.message = f"This API key lacks the '{scope}' scope."
            return scope in request.auth.scopes
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)
