from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "retention_crm.api"
    label = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        from retention_crm.api import schema  # noqa: F401  registers the OpenAPI auth extension
