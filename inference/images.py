"""Images of chat messages: `image_url` parts -> decoded, checked, oriented PIL images.

A part's url is a base64 data URI (png, jpeg, webp or gif) or an http(s) URL. URLs are fetched
with a timeout, a size cap and a redirect limit, and only from public addresses: every hop's
host is resolved and refused when any of its addresses is loopback, private, link-local (the
cloud metadata endpoints live there), shared, reserved or multicast, and the address actually
connected to is checked again (so DNS that changes its answer between the check and the
connection gains nothing). `MLX_SERVER_ALLOW_PRIVATE_IMAGE_URLS=1` lifts that for local use.

Whatever the source, the bytes must decode as one of the four formats; EXIF orientation is
applied and images above the pixel cap are scaled down. Each image keeps its sha256 (of the
bytes received) so logs and the prompt cache can tell images apart without keeping them.

Loading is blocking (network, decoding): the API layer runs it off the event loop, before the
request reaches the engine, so a slow URL never holds the model's worker.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import ipaddress
import math
import re
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from PIL import Image, ImageOps
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
LOW_DETAIL_SIDE = 512  # OpenAI's `detail: low`: the image fits in 512x512
_DATA_URI = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.S)
_HOST_ERRORS = (socket.gaierror, UnicodeError)


@dataclass(frozen=True)
class ImageLimits:
    """What the server accepts; `from_settings()` reads the MLX_SERVER_IMAGE_* settings."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    fetch_timeout: float = 10.0
    max_redirects: int = 3
    allow_private: bool = False

    @classmethod
    def from_settings(cls) -> "ImageLimits":
        from django.conf import settings

        return cls(
            max_bytes=settings.MLX_SERVER_IMAGE_MAX_BYTES,
            max_pixels=settings.MLX_SERVER_IMAGE_MAX_PIXELS,
            fetch_timeout=settings.MLX_SERVER_IMAGE_FETCH_TIMEOUT,
            max_redirects=settings.MLX_SERVER_IMAGE_MAX_REDIRECTS,
            allow_private=settings.MLX_SERVER_ALLOW_PRIVATE_IMAGE_URLS,
        )


@dataclass(eq=False)
class LoadedImage:
    """One decoded image, ready for a processor, and what the log keeps of it."""

    image: Image.Image = field(repr=False)  # RGB, upright, within the pixel cap
    sha256: str  # of the bytes as received (after base64 decoding)
    source: str  # data | url
    format: str  # PNG | JPEG | WEBP | GIF
    nbytes: int
    width: int  # as received, upright
    height: int
    detail: str = "auto"

    @property
    def key(self) -> str:
        """What identifies the pixels a model sees: the bytes and the size they were scaled to."""
        return f"{self.sha256}:{self.image.width}x{self.image.height}"

    def record(self, where: str) -> dict[str, Any]:
        return {
            "part": where, "source": self.source, "format": self.format, "bytes": self.nbytes,
            "width": self.width, "height": self.height, "sha256": self.sha256, "detail": self.detail,
            "resized_to": [self.image.width, self.image.height]
            if self.image.size != (self.width, self.height) else None,
        }


class InvalidImage(Exception):
    """An image part that cannot be used: bad data, not an image, too large, unreachable or
    refused URL; `details["param"]` names the part (messages[i].content[j]) and `code` is the
    API's error code."""

    code = "invalid_image"

    def __init__(self, message: str, *, param: str):
        super().__init__(message)
        self.details = {"param": param}


class ImageLoadError(ValueError):
    """Why one image could not be had (the caller adds which part it was)."""


# --- the parts of a request ---------------------------------------------------------------------


def image_parts(messages: list[dict[str, Any]]):
    """(where, part) for every image_url part, in message and part order."""
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") == "image_url":
                    yield f"messages[{i}].content[{j}]", part


def load_images(
    messages: list[dict[str, Any]], limits: ImageLimits, records: list[dict[str, Any]] | None = None
) -> list[LoadedImage]:
    """Load every image of `messages`, in order (the engine's ChatRequest.images); the
    messages themselves are left as they are.

    `records` (if given) gets one log record per image as it loads, so a caller still has the
    images loaded before a failure. A bad image raises InvalidImage naming its part.
    """
    loaded = []
    for where, part in image_parts(messages):
        image = load_part(part, where, limits)
        loaded.append(image)
        if records is not None:
            records.append(image.record(where))
    return loaded


def load_part(part: dict[str, Any], where: str, limits: ImageLimits) -> LoadedImage:
    spec = part.get("image_url")
    spec = {"url": spec} if isinstance(spec, str) else (spec or {})
    url, detail = spec.get("url") or "", spec.get("detail") or "auto"
    try:
        if url.startswith("data:"):
            raw, source = decode_data_uri(url, limits), "data"
        elif urlsplit(url).scheme.lower() in ("http", "https"):
            raw, source = fetch_url(url, limits), "url"
        else:
            raise ImageLoadError("image_url.url must be a base64 data: URI or an http(s) URL")
        image, fmt, width, height = decode_image(raw, limits, detail=detail)
    except ImageLoadError as exc:
        raise InvalidImage(f"{where}: {exc}", param=where) from None
    return LoadedImage(image, hashlib.sha256(raw).hexdigest(), source, fmt, len(raw), width, height, detail)


# --- data URIs ----------------------------------------------------------------------------------


def decode_data_uri(url: str, limits: ImageLimits) -> bytes:
    match = _DATA_URI.match(url)
    if match is None:
        raise ImageLoadError("the data URI is malformed (expected data:image/...;base64,...)")
    mime, params = match["mime"].strip().lower(), match["params"].lower().split(";")
    if mime and not mime.startswith("image/"):
        raise ImageLoadError(f"the data URI's media type is {mime!r}, not an image")
    if "base64" not in params:
        raise ImageLoadError("the data URI must be base64-encoded (data:image/...;base64,...)")
    data = re.sub(r"\s+", "", match["data"])
    if len(data.rstrip("=")) * 3 // 4 > limits.max_bytes:  # the decoded size (padding is no data)
        raise ImageLoadError(f"the image is larger than the {limits.max_bytes}-byte limit")
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ImageLoadError("the data URI's base64 payload is invalid") from None


# --- URLs ---------------------------------------------------------------------------------------


def refused_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local (metadata), shared, reserved, multicast, unspecified."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_loopback or ip.is_link_local


def check_host(host: str, port: int) -> None:
    """Refuse a host any of whose addresses is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except _HOST_ERRORS as exc:
        raise ImageLoadError(f"the image URL's host {host!r} could not be resolved ({exc})") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if refused_address(ip):
            raise ImageLoadError(
                f"the image URL's host {host!r} resolves to {ip}, a loopback, private, link-local or "
                "metadata address, which this server does not fetch from"
            )


_fetching = threading.local()  # the fetch running on this thread: public_only, sockets


class _PublicOnly:
    """A urllib3 connection that refuses, once connected, a peer that is not public (unless the
    fetch allows private addresses), and that the fetch's watchdog can cut at the deadline."""

    def _new_conn(self):
        sock = super()._new_conn()
        peer = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
        if getattr(_fetching, "public_only", True) and refused_address(peer):
            sock.close()
            raise _RefusedPeer(f"connected to {peer}, a non-public address")
        return sock

    def connect(self):
        super().connect()
        # the socket itself (TLS-wrapped for https): a response that ends at close takes it over
        getattr(_fetching, "sockets", []).append(self.sock)


class _RefusedPeer(OSError):
    pass


class _PublicHTTPConnection(_PublicOnly, HTTPConnection):
    pass


class _PublicHTTPSConnection(_PublicOnly, HTTPSConnection):
    pass


class _PublicHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PublicHTTPConnection


class _PublicHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PublicHTTPSConnection


class _PublicAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PublicHTTPPool, "https": _PublicHTTPSPool}


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc from the server's environment
    session.headers["User-Agent"] = "mlx-server image fetcher"
    session.headers["Accept"] = "image/*"
    adapter = _PublicAdapter(max_retries=0)  # private addresses allowed or not: the watchdog needs it
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch_url(url: str, limits: ImageLimits) -> bytes:
    """The body at `url`: redirects followed by hand (each hop checked), size and time capped.

    The timeout is for the whole fetch. A socket timeout bounds each read only, so a server that
    trickles its headers or body a byte at a time would go on for ever: at the deadline a
    watchdog shuts the fetch's connections down."""
    deadline = time.monotonic() + limits.fetch_timeout
    _fetching.public_only, _fetching.sockets = not limits.allow_private, []
    watchdog = threading.Timer(limits.fetch_timeout, _cut, (_fetching.sockets,))
    watchdog.daemon = True
    watchdog.start()
    try:
        return _fetch(url, limits, deadline)
    finally:
        watchdog.cancel()
        _fetching.public_only, _fetching.sockets = True, []


def _cut(sockets) -> None:
    for sock in list(sockets):
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP connection, under any TLS
        except OSError:
            pass  # closed already


def _too_slow(limits: ImageLimits) -> ImageLoadError:
    return ImageLoadError(f"fetching the image URL took longer than {limits.fetch_timeout:g}s")


def _fetch(url: str, limits: ImageLimits, deadline: float) -> bytes:
    with _session() as session:
        for _hop in range(limits.max_redirects + 1):
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ImageLoadError(f"the image URL {url[:200]!r} is not an http(s) URL")
            if not limits.allow_private:
                check_host(parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _too_slow(limits)
            try:
                response = session.get(url, stream=True, allow_redirects=False, timeout=remaining)
            except requests.exceptions.Timeout:
                raise _too_slow(limits) from None
            except requests.exceptions.RequestException as exc:
                if time.monotonic() >= deadline:  # cut by the watchdog
                    raise _too_slow(limits) from None
                if any(isinstance(e, _RefusedPeer) for e in _chain(exc)):
                    raise ImageLoadError(
                        f"the image URL's host {parts.hostname!r} connected to a loopback, private, "
                        "link-local or metadata address, which this server does not fetch from"
                    ) from None
                raise ImageLoadError(f"the image URL could not be fetched ({_reason(exc)})") from None
            with response:
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise ImageLoadError(f"the image URL answered HTTP {response.status_code}")
                return _read_capped(response, limits, deadline)
    raise ImageLoadError(f"the image URL redirected more than {limits.max_redirects} times")


def _chain(exc: BaseException):
    """Every exception a requests/urllib3 error wraps (args, reason, cause, context)."""
    stack, seen = [exc], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [*getattr(current, "args", ()), getattr(current, "reason", None),
                 current.__cause__, current.__context__]
        stack.extend(e for e in inner if isinstance(e, BaseException))


def _reason(exc: requests.exceptions.RequestException) -> str:
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "could not connect"
    return type(exc).__name__


def _read_capped(response: requests.Response, limits: ImageLimits, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise ImageLoadError(f"the image is larger than the {limits.max_bytes}-byte limit")
    body = bytearray()
    try:
        for chunk in response.iter_content(64 * 1024):
            body += chunk
            if len(body) > limits.max_bytes:
                raise ImageLoadError(f"the image is larger than the {limits.max_bytes}-byte limit")
            if time.monotonic() > deadline:
                raise _too_slow(limits)
    except requests.exceptions.RequestException as exc:
        if time.monotonic() >= deadline:  # cut by the watchdog
            raise _too_slow(limits) from None
        raise ImageLoadError(f"the image URL's body could not be read ({_reason(exc)})") from None
    if time.monotonic() >= deadline:  # cut by the watchdog where the body's end is the connection's
        raise _too_slow(limits)
    return bytes(body)


# --- decoding -----------------------------------------------------------------------------------


def decode_image(raw: bytes, limits: ImageLimits, *, detail: str = "auto") -> tuple[Image.Image, str, int, int]:
    """(RGB image, format, upright width, upright height); scaled down to the pixel cap and, for
    `detail: low`, to fit 512x512."""
    if len(raw) > limits.max_bytes:
        raise ImageLoadError(f"the image is larger than the {limits.max_bytes}-byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            fmt = image.format
            if fmt not in FORMATS:
                raise ImageLoadError(f"the image format {fmt} is not supported (PNG, JPEG, WEBP or GIF)")
            target = _target_pixels(image.width * image.height, limits, detail)
            if fmt == "JPEG" and target < image.width * image.height:
                scale = math.sqrt(target / (image.width * image.height))
                image.draft("RGB", (max(1, int(image.width * scale)), max(1, int(image.height * scale))))
            image.load()  # a truncated or corrupt file fails here, not later on the worker
            image = ImageOps.exif_transpose(image)
            image = image.convert("RGB")
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError("the image has too many pixels to decode safely") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageLoadError(f"the data is not an image that can be decoded ({exc})") from None
    upright = _upright_size(raw, image)
    pixels = upright[0] * upright[1]
    target = _target_pixels(pixels, limits, detail)
    scale = math.sqrt(min(1.0, target / (image.width * image.height)))
    if detail == "low":  # fit in 512x512 whatever the aspect ratio, not just 512*512 pixels
        scale = min(scale, LOW_DETAIL_SIDE / max(image.size))
    if scale < 1:  # floor, not round: two sides rounded up can land above the pixel cap
        size = (max(1, math.floor(image.width * scale + 1e-6)), max(1, math.floor(image.height * scale + 1e-6)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image, fmt, *upright


def _target_pixels(pixels: int, limits: ImageLimits, detail: str) -> int:
    target = min(pixels, limits.max_pixels)
    if detail == "low":
        target = min(target, LOW_DETAIL_SIDE * LOW_DETAIL_SIDE)
    return target


def _upright_size(raw: bytes, decoded: Image.Image) -> tuple[int, int]:
    """The image's size as received (not as drafted), with EXIF rotation applied."""
    with Image.open(io.BytesIO(raw)) as header:
        width, height = header.size
        orientation = header.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
