from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    name = "credentials"
    verbose_name = "Partner credentials"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import metrics, signin  # noqa: F401  (connect the operator sign-in counters, events)
