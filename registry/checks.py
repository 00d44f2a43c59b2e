"""`manage.py check` (and every start-up) reports a bad models.yaml with model and field."""
from django.core import checks

from .loader import RegistryError
from .specs import SpecError


@checks.register("models")
def check_models_yaml(app_configs=None, **kwargs):
    from .active import get_registry

    try:
        get_registry()
    except (RegistryError, SpecError) as exc:
        return [checks.Error(str(exc), hint="Fix models.yaml (see the comments at its top).", id="registry.E001")]
    return []
