"""`manage.py check` (and every start-up) reports a models.yaml entry naming a tool format
that inference/tools/ does not register, so the registry needs no copy of the names."""
from __future__ import annotations

from django.core import checks

from registry.specs import ModelSpec, SpecError

from .tools import TOOL_FORMATS


def spec_problems(spec: ModelSpec) -> list[SpecError]:
    """What of `spec` names a plug-in this server does not have."""
    if spec.tool_format in TOOL_FORMATS:
        return []
    return [SpecError(spec.id, "tool_format",
                      f"{spec.tool_format!r} is not one of {', '.join(TOOL_FORMATS)}")]


@checks.register("models")
def check_plugins_registered(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from registry.active import get_registry
    from registry.loader import RegistryError

    try:
        registry = get_registry()
    except (RegistryError, SpecError):  # registry.E001 reports a file that does not load
        return []
    return [
        checks.Error(str(problem), hint="Fix models.yaml (see the comments at its top).", id="inference.E001")
        for spec in registry.specs for problem in spec_problems(spec)
    ]
