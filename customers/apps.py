from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        from retention_crm import lookups  # noqa: F401  registers ``__any`` on every field
