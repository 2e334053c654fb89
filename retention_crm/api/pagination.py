from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request


class Pagination(LimitOffsetPagination):
    default_limit: int = 50
    max_limit = 500

    def get_limit(self, request: Request) -> int:
        # DRF's limit is None only without a default_limit, and this one has one.
        limit = super().get_limit(request)
        return self.default_limit if limit is None else limit
