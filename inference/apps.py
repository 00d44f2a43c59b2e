from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self) -> None:
        from . import checks, metrics  # noqa: F401  (checks registers the plug-in system check)

        metrics.connect()
