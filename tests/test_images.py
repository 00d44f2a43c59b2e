"""inference/images.py: image_url parts -> decoded, checked, oriented PIL images.

Data URIs are built in memory; URLs are fetched from a real HTTP server on 127.0.0.1 (reached with
ImageLimits(allow_private=True), or with the address checks partly patched to test refusals).
Address checks use literal IPs or a patched resolver: nothing here touches the network.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import ipaddress
import socket
import threading
import time
from urllib.parse import quote, unquote

import pytest
from PIL import Image

from inference import images
from inference.images import (
    LOW_DETAIL_SIDE,
    ImageLimits,
    ImageLoadError,
    InvalidImage,
    LoadedImage,
    check_host,
    decode_data_uri,
    decode_image,
    fetch_url,
    image_parts,
    load_images,
    load_part,
    refused_address,
)

FAST = 0.5  # seconds: the fetch timeout of the tests that wait for one


# --- images -------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    if fmt == "PNG":
        kwargs.setdefault("compress_level", 1)  # fast: big test images are many
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def picture(width: int, height: int) -> Image.Image:
    """Left half red, right half blue (so a rotation shows where the left half went)."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height))
    return image


def sample(fmt: str, width: int = 64, height: int = 48) -> bytes:
    image = picture(width, height)
    if fmt == "GIF":
        image = image.convert("P")
    return encode(image, fmt)


def with_orientation(image: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, fmt, exif=exif.tobytes())


def data_uri(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def is_red(pixel) -> bool:
    r, g, b = pixel
    return r > 200 and g < 60 and b < 60


def is_blue(pixel) -> bool:
    r, g, b = pixel
    return b > 200 and r < 60 and g < 60


JPEG = sample("JPEG")
PNG = sample("PNG")
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


# --- the HTTP server ----------------------------------------------------------------------------


class ImageServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.stop = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes by path; HTTP/1.0 (the connection closes after each response) unless a route says."""

    BIG = encode(Image.effect_noise((256, 256), 64).convert("RGB"), "PNG")  # noise: does not compress

    def log_message(self, *args):
        pass

    def reply(self, status: int, body: bytes = b"", ctype: str = "image/jpeg", length: bool = True,
              headers: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.seen.append((self.path, dict(self.headers)))
        path, _, query = self.path.partition("?")
        try:
            if path.startswith("/chain/"):  # n redirects (relative, every redirect status), then the image
                n = int(path.rsplit("/", 1)[1])
                if n == 0:
                    return self.reply(200, JPEG)
                code = (301, 302, 303, 307, 308)[n % 5]
                return self.reply(code, b"", "text/plain", headers={"Location": f"/chain/{n - 1}"})
            if path.startswith("/slow-chain/"):  # the same, each answer 0.2 s late
                n = int(path.rsplit("/", 1)[1])
                self.server.stop.wait(0.2)
                if n == 0:
                    return self.reply(200, JPEG)
                return self.reply(302, b"", "text/plain", headers={"Location": f"/slow-chain/{n - 1}"})
            route = getattr(self, "route_" + path.strip("/").replace("-", "_").replace(".", "_"), None)
            if route is None:
                return self.reply(404, b"not found", "text/plain")
            return route(unquote(query))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def route_img_jpg(self, query):
        self.reply(200, JPEG)

    def route_img_png(self, query):
        self.reply(200, PNG, "image/png")

    def route_png_as_octets(self, query):  # the body decides what it is, not its Content-Type
        self.reply(200, PNG, "application/octet-stream")

    def route_to(self, query):  # a redirect to the URL in the query
        self.reply(302, b"", "text/plain", headers={"Location": query})

    def route_no_location(self, query):
        self.reply(302, b"", "text/plain")

    def route_text(self, query):
        self.reply(200, b"<html><body>not an image</body></html>", "text/html")

    def route_empty(self, query):
        self.reply(200, b"")

    def route_error(self, query):
        self.reply(500, b"boom", "text/plain")

    def route_big(self, query):  # a real image, bigger than the tests' cap, its length declared
        self.reply(200, self.BIG, "image/png")

    def route_big_undeclared(self, query):  # the same, no Content-Length: the body ends at close
        self.reply(200, self.BIG, "image/png", length=False)

    def route_big_chunked(self, query):
        self.protocol_version = "HTTP/1.1"
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(self.BIG), 4096):
            chunk = self.BIG[start:start + 4096]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def route_huge_declared(self, query):  # says 1 GB, sends a little and then waits
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        self.wfile.write(PNG)
        self.wfile.flush()
        self.server.stop.wait(3)

    def route_gzip(self, query):
        self.reply(200, gzip.compress(JPEG), headers={"Content-Encoding": "gzip"})

    def route_gzip_bomb(self, query):  # ~1 KB on the wire, 1 MB once decoded
        self.reply(200, gzip.compress(bytes(1 << 20)), "image/png", headers={"Content-Encoding": "gzip"})

    def route_slow(self, query):  # nothing at all for 3 s
        self.server.stop.wait(3)
        self.reply(200, JPEG)

    def route_trickle_body(self, query):  # the headers at once, then a byte every 20 ms (~40 s in all)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(JPEG)))
        self.end_headers()
        self.trickle(JPEG)

    def route_trickle_headers(self, query):  # the status line, then a header a byte every 20 ms
        self.wfile.write(b"HTTP/1.0 200 OK\r\n")
        self.trickle(b"X-Slow: " + b"a" * 2000 + b"\r\n\r\n" + JPEG)

    def trickle(self, data: bytes):
        for i in range(len(data)):
            if self.server.stop.is_set():
                return
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(0.02)


@pytest.fixture(scope="module")
def server():
    server = ImageServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.stop.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def srv(server):
    server.seen.clear()
    return server


def local(**kwargs) -> ImageLimits:
    return ImageLimits(allow_private=True, **kwargs)


def refuse_all_but_127_0_0_1(monkeypatch):
    """Let the test server count as public, and nothing else that is not public."""
    real = images.refused_address
    monkeypatch.setattr(images, "refused_address",
                        lambda ip: ip != ipaddress.ip_address("127.0.0.1") and real(ip))


def fake_dns(monkeypatch, answers: dict[str, list[str]]):
    """getaddrinfo answers for made-up hosts: each lookup of a host takes the next answer (the
    last one repeats); other hosts resolve as usual. Returns the lookups made."""
    real, lookups = socket.getaddrinfo, []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        n = sum(1 for h in lookups if h == host)
        addresses = answers[host][min(n, len(answers[host])) - 1]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port or 80, 0, 0) if ":" in a else (a, port or 80)) for a in addresses.split(",")]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


# --- data URIs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_data_uri_round_trips_each_format(fmt):
    raw = sample(fmt, 64, 48)
    loaded = load_part({"type": "image_url", "image_url": {"url": data_uri(raw, MIME[fmt])}},
                       "messages[0].content[0]", ImageLimits())
    assert isinstance(loaded, LoadedImage)
    assert (loaded.format, loaded.source, loaded.detail) == (fmt, "data", "auto")
    assert (loaded.width, loaded.height) == (64, 48)
    assert loaded.image.size == (64, 48) and loaded.image.mode == "RGB"
    assert loaded.nbytes == len(raw) and loaded.sha256 == sha(raw)
    assert loaded.key == f"{sha(raw)}:64x48"
    assert is_red(loaded.image.getpixel((5, 24))) and is_blue(loaded.image.getpixel((58, 24)))


def test_data_uri_variants_accepted():
    b64 = base64.b64encode(PNG).decode()
    wrapped = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))  # MIME-style line breaks
    for url in (
        f"data:image/png;base64,{b64}",
        f"data:image/png;base64,{b64.rstrip('=')}",  # padding left off
        f"data:image/png;base64,{wrapped}",
        f"data:;base64,{b64}",  # no media type: the bytes decide
        f"data:IMAGE/PNG;BASE64,{b64}",
        f"data:image/png;name=x.png;base64,{b64}",  # other parameters
        f"data:image/jpeg;base64,{b64}",  # a media type that is wrong about the format
    ):
        assert decode_data_uri(url, ImageLimits()) == PNG, url
        assert load_part({"image_url": {"url": url}}, "p", ImageLimits()).format == "PNG"


@pytest.mark.parametrize("url, message", [
    ("data:image/png,iVBORw0KGgo", "must be base64-encoded"),  # no ;base64 flag
    ("data:image/png;charset=utf-8,abc", "must be base64-encoded"),
    ("data:image/png;base64", "malformed"),  # no comma
    ("data:image/png;base64;base64", "malformed"),
    ("data:text/plain;base64,aGVsbG8=", "'text/plain', not an image"),
    ("data:application/octet-stream;base64,aGVsbG8=", "not an image"),
    ("data:image/png;base64,!!!not base64!!!", "base64 payload is invalid"),
    ("data:image/png;base64,iVBORw0KGgo=AAAA", "base64 payload is invalid"),  # padding mid-way
    ("data:image/png;base64,iVBORw0KG", "base64 payload is invalid"),  # 9 chars: not a length base64 has
    ("data:image/png;base64,iVBO-w0K_go", "base64 payload is invalid"),  # the URL-safe alphabet
])
def test_data_uri_rejections(url, message):
    with pytest.raises(ImageLoadError, match=message):
        decode_data_uri(url, ImageLimits())


def test_data_uri_of_non_image_bytes():
    for raw in (b"hello, world" * 10, b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, PNG[: len(PNG) // 2]):
        with pytest.raises(ImageLoadError, match="not an image that can be decoded"):
            decode_image(decode_data_uri(data_uri(raw), ImageLimits()), ImageLimits())


def test_data_uri_svg_and_unsupported_formats():
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    with pytest.raises(ImageLoadError, match="not an image that can be decoded"):
        decode_image(svg, ImageLimits())
    for fmt in ("BMP", "TIFF", "ICO"):  # Pillow reads these, the server does not take them
        with pytest.raises(ImageLoadError, match=f"format {fmt} is not supported"):
            decode_image(sample(fmt, 32, 32), ImageLimits())


def test_data_uri_size_cap():
    cap = len(PNG)
    assert decode_data_uri(data_uri(PNG), ImageLimits(max_bytes=cap)) == PNG  # exactly at the cap
    image, *_ = decode_image(PNG, ImageLimits(max_bytes=cap))
    for raw in (PNG + b"\0", PNG + b"\0\0", PNG + b"\0\0\0"):  # one to three bytes over, any padding
        with pytest.raises(ImageLoadError, match=f"larger than the {cap}-byte limit"):
            decode_image(decode_data_uri(data_uri(raw), ImageLimits(max_bytes=cap)), ImageLimits(max_bytes=cap))
    # far over: refused from the length of the text, before any decoding
    with pytest.raises(ImageLoadError, match="larger than the 100-byte limit"):
        decode_data_uri("data:image/png;base64," + "A" * 10_000, ImageLimits(max_bytes=100))
    with pytest.raises(ImageLoadError, match="larger than the 100-byte limit"):
        decode_image(PNG, ImageLimits(max_bytes=100))


@pytest.mark.parametrize("extra", [0, 1, 2])
def test_data_uri_exactly_at_cap_is_accepted_whatever_the_padding(extra):
    raw = PNG + b"\0" * extra  # trailing bytes after IEND: still a PNG
    padded = data_uri(raw)
    assert padded.endswith("=" * ((3 - len(raw) % 3) % 3))
    assert decode_data_uri(padded, ImageLimits(max_bytes=len(raw))) == raw
    with pytest.raises(ImageLoadError, match="larger than"):
        decode_data_uri(padded, ImageLimits(max_bytes=len(raw) - 3))


# --- decoding: orientation, scaling, detail -----------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_6_turns_the_image_upright(fmt):
    raw = with_orientation(picture(80, 40), 6, fmt)  # stored 80x40, to be shown rotated 90 degrees clockwise
    image, got_fmt, width, height = decode_image(raw, ImageLimits())
    assert got_fmt == fmt
    assert (width, height) == (40, 80) and image.size == (40, 80)
    # the stored left half (red) is now on top
    assert is_red(image.getpixel((20, 10))) and is_blue(image.getpixel((20, 70)))


@pytest.mark.parametrize("orientation, size, top_left_red", [
    (1, (80, 40), True), (2, (80, 40), False), (3, (80, 40), False), (4, (80, 40), True),
    (5, (40, 80), True), (6, (40, 80), True), (7, (40, 80), False), (8, (40, 80), False),
])
def test_every_exif_orientation(orientation, size, top_left_red):
    image, _, width, height = decode_image(with_orientation(picture(80, 40), orientation), ImageLimits())
    assert image.size == (width, height) == size
    assert is_red(image.getpixel((5, 5))) is top_left_red


def test_orientation_through_load_part_reports_upright_size():
    raw = with_orientation(picture(80, 40), 8)
    loaded = load_part({"image_url": {"url": data_uri(raw, "image/jpeg")}}, "messages[0].content[0]", ImageLimits())
    assert (loaded.width, loaded.height) == (40, 80) == loaded.image.size
    assert loaded.sha256 == sha(raw)  # of the bytes as received, not of the turned pixels
    assert loaded.record("p")["resized_to"] is None


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])  # JPEG goes through draft() first
def test_huge_image_scaled_under_max_pixels_keeping_aspect(fmt):
    raw = sample(fmt, 1200, 600)
    limits = ImageLimits(max_pixels=100_000)
    image, _, width, height = decode_image(raw, limits)
    assert (width, height) == (1200, 600)  # as received
    assert image.width * image.height <= 100_000
    assert image.width * image.height >= 0.95 * 100_000  # not needlessly small
    assert abs(image.width / image.height - 2) < 0.02
    assert is_red(image.getpixel((10, image.height // 2))) and is_blue(image.getpixel((image.width - 10, image.height // 2)))


def test_scaled_size_never_above_the_cap():
    # sizes whose exact scaled sides both round up: 300x200 -> 122.47 x 81.65 for a 10,000-pixel cap
    for (w, h, cap) in [(300, 200, 10_000), (301, 211, 7_777), (640, 480, 50_000), (999, 333, 12_345),
                        (500, 499, 1_000), (257, 129, 4_099)]:
        image, _, width, height = decode_image(sample("PNG", w, h), ImageLimits(max_pixels=cap))
        assert (width, height) == (w, h)
        assert image.width * image.height <= cap, (w, h, cap, image.size)
        assert image.width * image.height > 0.9 * cap, (w, h, cap, image.size)


def test_image_at_the_cap_is_left_alone():
    image, *_ = decode_image(sample("PNG", 100, 50), ImageLimits(max_pixels=5000))
    assert image.size == (100, 50)
    image, *_ = decode_image(sample("PNG", 100, 51), ImageLimits(max_pixels=5000))
    assert image.width * image.height <= 5000 and image.size != (100, 51)


def test_huge_rotated_jpeg_reports_its_upright_size_as_received():
    raw = with_orientation(picture(1600, 800), 6)
    image, _, width, height = decode_image(raw, ImageLimits(max_pixels=40_000))
    assert (width, height) == (800, 1600)
    assert image.width * image.height <= 40_000 and image.height > image.width
    assert abs(image.height / image.width - 2) < 0.05
    assert is_red(image.getpixel((image.width // 2, 5)))


@pytest.mark.parametrize("size", [(2000, 500), (500, 2000), (1024, 1024), (600, 513), (1800, 1200)])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_detail_low_fits_512x512(size, fmt):
    image, _, width, height = decode_image(sample(fmt, *size), ImageLimits(), detail="low")
    assert (width, height) == size
    assert image.width <= LOW_DETAIL_SIDE and image.height <= LOW_DETAIL_SIDE, image.size
    assert max(image.size) >= LOW_DETAIL_SIDE - 1  # fits, not shrunk further than needed
    assert abs(image.width / image.height - size[0] / size[1]) < 0.02


def test_detail_low_leaves_small_images_and_other_details_leave_512():
    image, *_ = decode_image(sample("PNG", 300, 200), ImageLimits(), detail="low")
    assert image.size == (300, 200)  # never enlarged
    for detail in ("auto", "high"):
        image, *_ = decode_image(sample("PNG", 1024, 700), ImageLimits(), detail=detail)
        assert image.size == (1024, 700)


def test_detail_low_with_a_smaller_pixel_cap():
    image, *_ = decode_image(sample("PNG", 1000, 1000), ImageLimits(max_pixels=100 * 100), detail="low")
    assert image.width * image.height <= 100 * 100 and image.size[0] >= 99


def test_decompression_bombs_refused(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for side in (40, 100):  # 1,600 pixels: Pillow warns; 10,000: Pillow refuses
        with pytest.raises(ImageLoadError, match="too many pixels"):
            decode_image(sample("PNG", side, side), ImageLimits())


def test_modes_become_rgb():
    for image in (Image.new("RGBA", (10, 10), (255, 0, 0, 128)), Image.new("L", (10, 10), 200),
                  Image.new("P", (10, 10)), Image.new("1", (10, 10)), Image.new("LA", (10, 10))):
        decoded, *_ = decode_image(encode(image, "PNG"), ImageLimits())
        assert decoded.mode == "RGB" and decoded.size == (10, 10)
    cmyk, fmt, *_ = decode_image(encode(Image.new("CMYK", (10, 10)), "JPEG"), ImageLimits())
    assert (cmyk.mode, fmt) == ("RGB", "JPEG")


def test_animated_gif_takes_the_first_frame():
    frames = [Image.new("RGB", (20, 10), color).convert("P") for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    image, fmt, width, height = decode_image(buffer.getvalue(), ImageLimits())
    assert (fmt, width, height) == ("GIF", 20, 10) and is_red(image.getpixel((5, 5)))


# --- the parts of a request ---------------------------------------------------------------------


def test_load_images_in_order_across_messages_and_turns():
    raws = [sample("PNG", 10, 10), sample("JPEG", 20, 10), sample("WEBP", 30, 10), sample("GIF", 40, 10)]
    messages = [
        {"role": "system", "content": "You describe images."},
        {"role": "user", "content": [
            {"type": "text", "text": "first"},
            {"type": "image_url", "image_url": {"url": data_uri(raws[0])}},
            {"type": "text", "text": "second"},
            {"type": "image_url", "image_url": {"url": data_uri(raws[1], "image/jpeg"), "detail": "high"}},
        ]},
        {"role": "assistant", "content": "Two images."},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": data_uri(raws[2], "image/webp")},  # the bare-string form
            {"type": "text", "text": "and"},
            {"type": "image_url", "image_url": {"url": data_uri(raws[3], "image/gif"), "detail": "low"}},
        ]},
    ]
    records: list[dict] = []
    loaded = load_images(messages, ImageLimits(), records)
    assert [image.sha256 for image in loaded] == [sha(raw) for raw in raws]
    assert [image.format for image in loaded] == ["PNG", "JPEG", "WEBP", "GIF"]
    assert [image.width for image in loaded] == [10, 20, 30, 40]
    assert [image.detail for image in loaded] == ["auto", "high", "auto", "low"]
    parts = [messages[1]["content"][1], messages[1]["content"][3], messages[4]["content"][0], messages[4]["content"][2]]
    # The client's dicts are left as they are: the images travel as ChatRequest.images.
    assert all("image" not in part for part in parts)
    assert all("image" not in part for part in (messages[1]["content"][0], messages[1]["content"][2], messages[4]["content"][1]))
    assert [r["part"] for r in records] == ["messages[1].content[1]", "messages[1].content[3]",
                                            "messages[4].content[0]", "messages[4].content[2]"]
    assert records == [image.record(where) for image, where in zip(loaded, [r["part"] for r in records])]
    assert [where for where, _ in image_parts(messages)] == [r["part"] for r in records]
    assert len(load_images(messages, ImageLimits())) == 4  # records are optional


def test_load_images_without_images():
    messages = [{"role": "user", "content": "hi"}, {"role": "user", "content": [{"type": "text", "text": "x"}]}, {"role": "user"}]
    records: list[dict] = []
    assert load_images(messages, ImageLimits(), records) == [] and records == []


def test_record_has_what_the_log_keeps_and_never_the_bytes():
    raw = sample("PNG", 1000, 400)
    url = data_uri(raw)
    loaded = load_part({"image_url": {"url": url, "detail": "low"}}, "messages[2].content[1]", ImageLimits())
    record = loaded.record("messages[2].content[1]")
    assert record == {
        "part": "messages[2].content[1]", "source": "data", "format": "PNG", "bytes": len(raw),
        "width": 1000, "height": 400, "sha256": sha(raw), "detail": "low", "resized_to": [512, 204],
    }
    flat = repr(record)
    assert not any(isinstance(value, (bytes, bytearray, memoryview)) for value in record.values())
    assert url[30:90] not in flat and len(flat) < 400
    assert "image" not in record and "url" not in record


def test_errors_name_the_part():
    good = {"type": "image_url", "image_url": {"url": data_uri(PNG)}}
    bad = {"type": "image_url", "image_url": {"url": "data:image/png;base64,####"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, good]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}, bad, dict(good)]},
    ]
    records: list[dict] = []
    with pytest.raises(InvalidImage) as caught:
        load_images(messages, ImageLimits(), records)
    error = caught.value
    assert error.code == "invalid_image"
    assert error.details == {"param": "messages[2].content[2]"}
    assert str(error).startswith("messages[2].content[2]: ") and "base64" in str(error)
    assert error.__cause__ is None and error.__suppress_context__
    # what loaded before the failure is still there for the log
    assert [r["part"] for r in records] == ["messages[0].content[1]"] and "image" not in good
    assert "image" not in messages[2]["content"][3]


@pytest.mark.parametrize("url, message", [
    ("", "must be a base64 data: URI or an http\\(s\\) URL"),
    ("ftp://127.0.0.1:9/a.png", "http\\(s\\) URL"),
    ("file:///etc/passwd", "http\\(s\\) URL"),
    ("/relative/path.png", "http\\(s\\) URL"),
    ("javascript:alert(1)", "http\\(s\\) URL"),
    ("data:text/html;base64,PGI+", "not an image"),
    ("data:image/png;base64," + base64.b64encode(b"GIF89a junk").decode(), "not an image that can be decoded"),
])
def test_load_part_errors_are_invalid_image(url, message):
    with pytest.raises(InvalidImage, match=message) as caught:
        load_part({"type": "image_url", "image_url": {"url": url}}, "messages[3].content[0]", ImageLimits())
    assert caught.value.details["param"] == "messages[3].content[0]"
    assert str(caught.value).startswith("messages[3].content[0]: ")


def test_missing_image_url_is_invalid_image():
    for part in ({"type": "image_url"}, {"type": "image_url", "image_url": None}, {"type": "image_url", "image_url": {}}):
        with pytest.raises(InvalidImage):
            load_part(part, "messages[0].content[0]", ImageLimits())


def test_limits_from_settings(settings):
    settings.MLX_SERVER_IMAGE_MAX_BYTES = 123
    settings.MLX_SERVER_IMAGE_MAX_PIXELS = 456
    settings.MLX_SERVER_IMAGE_FETCH_TIMEOUT = 1.5
    settings.MLX_SERVER_IMAGE_MAX_REDIRECTS = 7
    settings.MLX_SERVER_ALLOW_PRIVATE_IMAGE_URLS = True
    assert ImageLimits.from_settings() == ImageLimits(123, 456, 1.5, 7, True)


def test_default_limits_refuse_private_addresses():
    defaults = ImageLimits()
    assert defaults.allow_private is False and defaults.max_redirects == 3
    assert defaults.max_bytes == 20 * 1024 * 1024 and defaults.max_pixels == 4096 * 4096


# --- address checks -----------------------------------------------------------------------------


REFUSED = [
    "127.0.0.1", "127.255.255.254", "0.0.0.0",  # loopback, unspecified
    "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.0.1", "192.168.255.255",  # private
    "169.254.169.254", "169.254.0.1",  # link-local: the cloud metadata endpoint
    "100.64.0.1", "100.127.255.254",  # shared (carrier-grade NAT)
    "224.0.0.1", "239.255.255.250", "233.252.0.1",  # multicast
    "240.0.0.1", "255.255.255.255",  # reserved, broadcast
    "192.0.0.170", "192.0.2.1", "198.18.0.1", "198.51.100.1", "203.0.113.1",  # special purpose, documentation
    "::1", "::",  # loopback, unspecified
    "fd00::1", "fc00::1", "fd00:ec2::254",  # unique local (the last: AWS's IPv6 metadata endpoint)
    "fe80::1",  # link-local
    "ff02::1", "ff0e::1", "ff05::2",  # multicast, global scope too
    "2001:db8::1",  # documentation
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:192.168.1.1",  # IPv4-mapped
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "172.15.255.255", "100.128.0.1",
          "100.63.255.255", "11.0.0.1", "223.255.255.254", "2606:4700:4700::1111", "2001:4860:4860::8888",
          "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_refused_addresses(address):
    assert refused_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address):
    assert refused_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "10.0.0.1", "192.168.1.1", "192.168.1.10", "169.254.169.254", "::1",
                                  "fd00::1", "100.64.0.1", "224.0.0.251", "0.0.0.0",
                                  # other spellings of 127.0.0.1 the resolver takes as literals
                                  "2130706433", "0x7f000001", "127.1", "0177.0.0.1"])
def test_check_host_refuses_literal_non_public(host):
    with pytest.raises(ImageLoadError, match="loopback, private, link-local or metadata"):
        check_host(host, 80)


@pytest.mark.parametrize("host", ["8.8.8.8", "93.184.216.34", "100.128.0.1", "2606:4700:4700::1111"])
def test_check_host_accepts_literal_public(host):
    assert check_host(host, 443) is None


def test_check_host_refuses_when_any_address_is_private(monkeypatch):
    fake_dns(monkeypatch, {"mixed.test": ["93.184.216.34,10.0.0.5"], "v6.test": ["2606:4700::1,fe80::1%eth0"],
                           "public.test": ["93.184.216.34,2606:4700::1"]})
    with pytest.raises(ImageLoadError, match=r"'mixed.test' resolves to 10\.0\.0\.5"):
        check_host("mixed.test", 80)
    with pytest.raises(ImageLoadError, match=r"resolves to fe80::1,"):  # the scope id is no hiding place
        check_host("v6.test", 80)
    check_host("public.test", 80)


def test_check_host_unresolvable(monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(ImageLoadError, match="'nowhere.test' could not be resolved"):
        check_host("nowhere.test", 80)

    def bad_idna(*args, **kwargs):
        raise UnicodeError("label too long")

    monkeypatch.setattr(socket, "getaddrinfo", bad_idna)
    with pytest.raises(ImageLoadError, match="could not be resolved"):
        check_host("x" * 70 + ".test", 80)


# --- fetching URLs ------------------------------------------------------------------------------


def test_fetch_a_jpeg(srv):
    loaded = load_part({"type": "image_url", "image_url": {"url": srv.url("/img.jpg"), "detail": "low"}},
                       "messages[0].content[0]", local())
    assert (loaded.source, loaded.format, loaded.width, loaded.height) == ("url", "JPEG", 64, 48)
    assert loaded.sha256 == sha(JPEG) and loaded.nbytes == len(JPEG) and loaded.detail == "low"
    assert loaded.record("x")["source"] == "url"
    (path, headers), = srv.seen
    assert path == "/img.jpg"
    assert headers["User-Agent"] == "mlx-server image fetcher" and headers["Accept"] == "image/*"


def test_fetch_url_returns_the_body(srv):
    assert fetch_url(srv.url("/img.png"), local()) == PNG
    assert fetch_url(srv.url("/png-as-octets"), local()) == PNG
    assert load_part({"image_url": {"url": srv.url("/png-as-octets")}}, "p", local()).format == "PNG"


def test_fetch_ignores_proxy_settings_of_the_environment(srv, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert fetch_url(srv.url("/img.jpg"), local()) == JPEG


def test_fetch_gzip_encoded(srv):
    assert fetch_url(srv.url("/gzip"), local()) == JPEG  # the image's bytes, decoded from the transfer


def test_gzip_bomb_capped_on_decoded_size(srv):
    with pytest.raises(ImageLoadError, match="larger than the 100000-byte limit"):
        fetch_url(srv.url("/gzip-bomb"), local(max_bytes=100_000))


@pytest.mark.parametrize("hops", [0, 1, 3])
def test_redirects_within_the_limit_are_followed(srv, hops):
    assert fetch_url(srv.url(f"/chain/{hops}"), local(max_redirects=3)) == JPEG
    assert srv.paths() == [f"/chain/{n}" for n in range(hops, -1, -1)]


def test_redirect_chain_longer_than_the_limit(srv):
    with pytest.raises(ImageLoadError, match="redirected more than 3 times"):
        fetch_url(srv.url("/chain/4"), local(max_redirects=3))
    assert srv.paths() == ["/chain/4", "/chain/3", "/chain/2", "/chain/1"]  # /chain/0 never asked for
    srv.seen.clear()
    with pytest.raises(InvalidImage, match="messages\\[1\\].content\\[0\\]: .*redirected more than 0 times"):
        load_part({"image_url": {"url": srv.url("/chain/1")}}, "messages[1].content[0]", local(max_redirects=0))
    assert srv.paths() == ["/chain/1"]


def test_absolute_redirect(srv):
    assert fetch_url(srv.url("/to?" + quote(srv.url("/img.png"))), local()) == PNG


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x.png", "gopher://127.0.0.1:70/"])
def test_redirect_to_a_non_http_url(srv, target):
    with pytest.raises(ImageLoadError, match="is not an http\\(s\\) URL"):
        fetch_url(srv.url("/to?" + quote(target)), local())


def test_redirect_without_location(srv):
    with pytest.raises(ImageLoadError, match="answered HTTP 302"):
        fetch_url(srv.url("/no-location"), local())


@pytest.mark.parametrize("target, refused", [
    ("http://127.9.9.9:{port}/latest/meta-data/iam/", "127\\.9\\.9\\.9"),
    ("http://[::1]:{port}/img.jpg", "::1"),
    ("http://127.0.0.2:{port}/img.jpg", "127\\.0\\.0\\.2"),
    ("http://[::ffff:127.0.0.1]:{port}/img.jpg", "::ffff:(127.0.0.1|7f00:1)"),  # as Python spells it
])
def test_redirect_to_a_refused_address(srv, monkeypatch, target, refused):
    refuse_all_but_127_0_0_1(monkeypatch)
    target = target.format(port=srv.server_address[1])
    started = time.monotonic()
    with pytest.raises(ImageLoadError, match=f"resolves to {refused}, a loopback, private, link-local or metadata"):
        fetch_url(srv.url("/to?" + quote(target)), ImageLimits(allow_private=False, fetch_timeout=5))
    assert time.monotonic() - started < 2  # refused before any connection, not timed out
    assert srv.paths() == ["/to?" + quote(target)]


def test_fetch_from_a_private_address_refused_without_allow_private(srv):
    for url in (srv.url("/img.jpg"), f"http://[::1]:{srv.server_address[1]}/img.jpg",
                f"http://2130706433:{srv.server_address[1]}/img.jpg", f"http://localhost:{srv.server_address[1]}/img.jpg"):
        with pytest.raises(InvalidImage, match="loopback, private, link-local or metadata") as caught:
            load_part({"image_url": {"url": url}}, "messages[0].content[1]", ImageLimits())
        assert caught.value.details == {"param": "messages[0].content[1]"}
    assert srv.seen == []  # not one request reached the server


def test_connected_peer_checked_again(srv, monkeypatch):
    """DNS that answers a public address for the check and the loopback one for the connection."""
    lookups = fake_dns(monkeypatch, {"rebind.test": ["93.184.216.34", "127.0.0.1"], "local.test": ["127.0.0.1"]})
    url = f"http://rebind.test:{srv.server_address[1]}/img.jpg"
    with pytest.raises(ImageLoadError, match="'rebind.test' connected to a loopback, private, link-local or metadata"):
        fetch_url(url, ImageLimits())
    assert lookups == ["rebind.test", "rebind.test"]  # the check's lookup, then the connection's
    assert srv.seen == []  # refused once connected, before any request was sent
    # with private addresses allowed: no check, and the connection goes through
    assert fetch_url(f"http://local.test:{srv.server_address[1]}/img.jpg", local()) == JPEG
    assert lookups == ["rebind.test", "rebind.test", "local.test"]


def test_connected_peer_checked_on_a_later_hop(srv, monkeypatch):
    """The first hop (the test server, let through once as if public) redirects to a host whose
    DNS answers a public address for the check and 127.0.0.1 for the connection."""
    real, passes = images.refused_address, []

    def refused(ip):
        if ip == ipaddress.ip_address("127.0.0.1") and len(passes) < 2:  # the first hop's check and peer
            passes.append(ip)
            return False
        return real(ip)

    monkeypatch.setattr(images, "refused_address", refused)
    lookups = fake_dns(monkeypatch, {"rebind.test": ["93.184.216.34", "127.0.0.1"]})
    target = f"http://rebind.test:{srv.server_address[1]}/img.jpg"
    with pytest.raises(ImageLoadError, match="'rebind.test' connected to a loopback"):
        fetch_url(srv.url("/to?" + quote(target)), ImageLimits(fetch_timeout=5))
    assert len(passes) == 2 and lookups == ["rebind.test", "rebind.test"]
    assert srv.paths() == ["/to?" + quote(target)]  # the second hop sent nothing


def test_body_over_the_cap_with_content_length(srv):
    cap = len(Handler.BIG) - 1
    with pytest.raises(ImageLoadError, match=f"larger than the {cap}-byte limit"):
        fetch_url(srv.url("/big"), local(max_bytes=cap))
    assert fetch_url(srv.url("/big"), local(max_bytes=cap + 1)) == Handler.BIG  # exactly at the cap


@pytest.mark.parametrize("path", ["/big-undeclared", "/big-chunked"])
def test_body_over_the_cap_without_content_length(srv, path):
    cap = len(Handler.BIG) - 1
    with pytest.raises(ImageLoadError, match=f"larger than the {cap}-byte limit"):
        fetch_url(srv.url(path), local(max_bytes=cap))
    assert fetch_url(srv.url(path), local(max_bytes=cap + 1)) == Handler.BIG
    loaded = load_part({"image_url": {"url": srv.url(path)}}, "p", local())
    assert loaded.sha256 == sha(Handler.BIG) and loaded.format == "PNG" and loaded.width == 256


def test_declared_length_over_the_cap_refused_without_reading(srv):
    started = time.monotonic()
    with pytest.raises(ImageLoadError, match="larger than the 1000000-byte limit"):
        fetch_url(srv.url("/huge-declared"), local(max_bytes=1_000_000, fetch_timeout=5))
    assert time.monotonic() - started < 2  # the header said enough: no waiting for the body


@pytest.mark.parametrize("path", ["/slow", "/trickle-body", "/trickle-headers"])
def test_slow_server_beyond_the_timeout(srv, path):
    # /slow sends nothing for 3 s; the trickles send a byte every 20 ms, each read well within
    # any socket timeout, for ~40 s: the timeout is for the whole fetch
    started = time.monotonic()
    with pytest.raises(InvalidImage, match=r"messages\[0\].content\[2\]: fetching the image URL took longer than 0.5s") as caught:
        load_part({"image_url": {"url": srv.url(path)}}, "messages[0].content[2]", local(fetch_timeout=FAST))
    elapsed = time.monotonic() - started
    assert FAST * 0.9 <= elapsed < FAST + 1, elapsed
    assert caught.value.details["param"] == "messages[0].content[2]"


def test_timeout_is_for_the_whole_redirect_chain(srv):
    # each hop answers in 0.2 s, well within the timeout; the four of them do not
    started = time.monotonic()
    with pytest.raises(ImageLoadError, match="took longer than 0.5s"):
        fetch_url(srv.url("/slow-chain/3"), local(fetch_timeout=FAST, max_redirects=5))
    assert time.monotonic() - started < FAST + 1
    assert srv.paths()[:2] == ["/slow-chain/3", "/slow-chain/2"] and "/slow-chain/0" not in srv.paths()


def test_zero_timeout_fetches_nothing(srv):
    with pytest.raises(ImageLoadError, match="took longer than 0s"):
        fetch_url(srv.url("/img.jpg"), local(fetch_timeout=0))
    assert srv.seen == []


@pytest.mark.parametrize("path, status", [("/missing.png", 404), ("/error", 500)])
def test_http_error_status(srv, path, status):
    with pytest.raises(ImageLoadError, match=f"answered HTTP {status}"):
        fetch_url(srv.url(path), local())


@pytest.mark.parametrize("path", ["/text", "/empty"])
def test_non_image_body(srv, path):
    with pytest.raises(InvalidImage, match="not an image that can be decoded") as caught:
        load_part({"image_url": {"url": srv.url(path)}}, "messages[0].content[0]", local())
    assert caught.value.details["param"] == "messages[0].content[0]"


def test_unreachable_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    started = time.monotonic()
    with pytest.raises(InvalidImage, match="could not be fetched \\(could not connect\\)") as caught:
        load_part({"image_url": {"url": f"http://127.0.0.1:{port}/x.png"}}, "messages[5].content[1]", local())
    assert caught.value.details == {"param": "messages[5].content[1]"}
    assert time.monotonic() - started < 2


def test_load_images_mixes_urls_and_data(srv):
    messages = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": srv.url("/img.jpg")}},
        {"type": "text", "text": "and"},
        {"type": "image_url", "image_url": {"url": data_uri(PNG)}},
        {"type": "image_url", "image_url": {"url": srv.url("/chain/1")}},
    ]}]
    records: list[dict] = []
    loaded = load_images(messages, local(), records)
    assert [(i.source, i.format, i.sha256) for i in loaded] == [("url", "JPEG", sha(JPEG)), ("data", "PNG", sha(PNG)),
                                                                 ("url", "JPEG", sha(JPEG))]
    assert [r["part"] for r in records] == ["messages[0].content[0]", "messages[0].content[2]", "messages[0].content[3]"]
    assert all(not isinstance(v, bytes) for r in records for v in r.values())
