"""models.yaml -> Registry: the set of models this server knows, and name resolution."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .specs import ModelSpec, SpecError, parse_spec


class RegistryError(ValueError):
    """models.yaml cannot be used as a whole (unreadable, wrong shape, clashing names)."""


@dataclass(frozen=True)
class Registry:
    specs: tuple[ModelSpec, ...]
    default_id: str
    path: Path

    def resolve(self, name: str) -> ModelSpec | None:
        """Find a model by id or alias (exact first, then case-insensitive)."""
        for spec in self.specs:
            if name in spec.names:
                return spec
        lowered = name.lower()
        for spec in self.specs:
            if lowered in (n.lower() for n in spec.names):
                return spec
        return None

    @property
    def default(self) -> ModelSpec:
        spec = self.resolve(self.default_id)
        assert spec is not None  # checked when the registry was built
        return spec


def parse_registry(data: object, path: Path) -> Registry:
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: the top level must be a mapping with 'default' and 'models'")
    raw_models = data.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise RegistryError(f"{path}: 'models' must be a non-empty list")
    unknown = set(data) - {"default", "models"}
    if unknown:
        raise RegistryError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    specs = tuple(parse_spec(raw, i) for i, raw in enumerate(raw_models))
    owners: dict[str, str] = {}
    for spec in specs:
        for name in spec.names:
            key = name.lower()
            if key in owners:
                raise SpecError(spec.id, "aliases" if name != spec.id else "id",
                                f"{name!r} is already used by model {owners[key]!r}")
            owners[key] = spec.id
    default = data.get("default", specs[0].id)
    if not isinstance(default, str) or default.lower() not in owners:
        raise RegistryError(f"{path}: 'default' must name a listed model (id or alias), got {default!r}")
    return Registry(specs=specs, default_id=owners[default.lower()], path=path)


def load_registry(path: Path) -> Registry:
    """Read and validate a models.yaml; raises RegistryError or SpecError with the reason."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"cannot read models file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
    return parse_registry(data, Path(path))
