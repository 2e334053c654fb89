from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "retention_crm.api"
    label = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        from retention_crm.api import schema  # noqa: F401  registers the OpenAPI auth extension
        from retention_crm.health import install_worker_heartbeat

        install_worker_heartbeat()  # every worker records a heartbeat that /healthz reads
