"""Shapes every API module shares: the error body (for the schema) and the JSON-object body."""

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from retention_crm.errors import ApplicationError


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    # DRF's metaclass takes declared fields out of the class, so this does not hide Serializer.fields.
    fields = serializers.DictField()  # type: ignore[assignment]


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# The error answers every endpoint documents.
ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def body_object(request: Request) -> dict[str, Any]:
    """The JSON body, which must be an object."""
    if not isinstance(request.data, dict):
        raise ApplicationError("The request body must be a JSON object.", code="invalid")
    return request.data
