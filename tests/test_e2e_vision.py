"""End to end: images through the real `openai` SDK, Daphne, the engine and mlx-vlm, on the two
random-weight fixtures of the seed's vision architectures (Gemma 3 and Qwen3-VL).

Their answers are noise, so these tests prove plumbing, not understanding: images reach the
model (different images, different greedy answers; prompt tokens grow by the processor's image
tokens), bad images get a 400 naming their part, logs keep hashes not bytes, and text and
vision models swap both ways.
"""
from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import threading
from functools import partial

import openai
import pytest
from PIL import Image

from testkit.live import LiveServer
from tests.helpers import chat

pytestmark = pytest.mark.e2e

FIXTURES = ["tiny-gemma3-vision", "tiny-qwen3-vl"]


def image_bytes(kind: str, fmt: str = "PNG", size: tuple[int, int] = (96, 96)) -> bytes:
    """Distinct pictures: solid colours, stripes, a checkerboard."""
    image = Image.new("RGB", size, "white")
    pixels = image.load()
    for x in range(size[0]):
        for y in range(size[1]):
            if kind == "red":
                pixels[x, y] = (220, 20, 20)
            elif kind == "blue":
                pixels[x, y] = (20, 20, 220)
            elif kind == "stripes":
                pixels[x, y] = (0, 0, 0) if (x // 8) % 2 else (255, 255, 0)
            elif kind == "checker":
                pixels[x, y] = (0, 0, 0) if ((x // 12) + (y // 12)) % 2 else (255, 255, 255)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def data_uri(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def picture_turn(*images: str, text: str = "Describe the picture.") -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": text}, *map(image_part, images)]}]


class ImageHost:
    """A local HTTP server for image URLs: /cat.jpg is a JPEG, /notes.txt is not an image."""

    def __init__(self):
        files = {"/cat.jpg": (image_bytes("checker", "JPEG"), "image/jpeg"),
                 "/notes.txt": (b"not an image at all", "text/plain")}

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                seen.append(self.path)
                body, kind = files.get(self.path, (None, None))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.jpeg = files["/cat.jpg"][0]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def image_host():
    host = ImageHost()
    yield host
    host.httpd.shutdown()


@pytest.fixture(scope="module")
def vision_server(tmp_path_factory, smollm2_dir, tiny_gemma3_dir, tiny_qwen3_vl_dir):
    root = tmp_path_factory.mktemp("vision")
    models = {
        "default": "smollm2",
        "models": [
            {"id": "smollm2-135m-instruct", "aliases": ["smollm2"], "source": {"path": str(smollm2_dir)},
             "context_length": 2048},
            {"id": "tiny-gemma3-vision", "source": {"path": str(tiny_gemma3_dir)}, "backend": "vision",
             "tool_format": "gemma_tool_code", "capabilities": ["chat", "vision"], "fixture": True},
            {"id": "tiny-qwen3-vl", "source": {"path": str(tiny_qwen3_vl_dir)}, "backend": "vision",
             "tool_format": "qwen_tool_call", "capabilities": ["chat", "vision"], "fixture": True},
        ],
    }
    env = {"MLX_SERVER_ALLOW_PRIVATE_IMAGE_URLS": "1", "MLX_SERVER_IMAGE_MAX_BYTES": str(256 * 1024)}
    with LiveServer(root, models, env).start() as server:
        yield server


@pytest.fixture(scope="module")
def client(vision_server):
    return vision_server.openai()


greedy = partial(chat, max_tokens=8)


def last_row(server) -> dict:
    return server.log_rows()[-1]


@pytest.mark.parametrize("model", FIXTURES)
def test_png_data_uri_streamed_and_not_agree(client, vision_server, model):
    messages = picture_turn(data_uri(image_bytes("red")))
    whole = greedy(client, model, messages)
    assert whole.model == model and whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens >= 1
    chunks = list(greedy(client, model, messages, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    row = last_row(vision_server)
    assert row["status_code"] == 200 and row["image_count"] == 1
    (record,) = json.loads(row["images"])
    assert record["sha256"] == hashlib.sha256(image_bytes("red")).hexdigest()
    assert record["format"] == "PNG" and (record["width"], record["height"]) == (96, 96)
    assert record["part"] == "messages[0].content[1]"
    # The log keeps the hash, never the picture.
    assert base64.b64encode(image_bytes("red")).decode()[:40] not in row["request_body"]
    assert "base64 chars omitted" in row["request_body"]


@pytest.mark.parametrize("model", FIXTURES)
def test_different_images_give_different_greedy_answers(client, model):
    answers = {
        kind: greedy(client, model, picture_turn(data_uri(image_bytes(kind)))).choices[0].message.content
        for kind in ("red", "blue", "stripes", "checker")
    }
    assert len(set(answers.values())) > 1, answers
    # ...while the same image twice is deterministic.
    again = greedy(client, model, picture_turn(data_uri(image_bytes("stripes")))).choices[0].message.content
    assert again == answers["stripes"]


@pytest.mark.parametrize("model", FIXTURES)
def test_prompt_tokens_grow_by_the_processors_image_tokens(client, model, tiny_gemma3_dir, tiny_qwen3_vl_dir):
    from mlx_vlm import load

    folder = tiny_gemma3_dir if model == "tiny-gemma3-vision" else tiny_qwen3_vl_dir
    _, processor = load(str(folder))  # mlx-vlm's own processor classes, as the server's
    config = json.loads((folder / "config.json").read_text())
    image_token = config.get("image_token_index", config.get("image_token_id"))
    marker = getattr(processor, "image_token", None) or "<|vision_start|><|image_pad|><|vision_end|>"
    if model == "tiny-gemma3-vision":
        marker = processor.boi_token
    picture = Image.open(io.BytesIO(image_bytes("red")))
    per_image = processor(text=[f"a {marker}"], images=[picture], return_tensors="np")["input_ids"][0].tolist().count(
        image_token)
    assert per_image > 0

    images = [data_uri(image_bytes(k)) for k in ("red", "blue")]
    counts = [greedy(client, model, picture_turn(*images[:n]), max_tokens=1).usage.prompt_tokens for n in (0, 1, 2)]
    first, second = counts[1] - counts[0], counts[2] - counts[1]
    assert first == second  # each image costs the same
    assert per_image <= first <= per_image + 6  # its image tokens plus the family's few marker tokens


@pytest.mark.parametrize("model", FIXTURES)
def test_jpeg_from_a_url_and_two_images_in_one_message(client, vision_server, image_host, model):
    chunks = list(greedy(client, model, picture_turn(f"{image_host.url}/cat.jpg"), stream=True))
    from_url = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    (record,) = json.loads(last_row(vision_server)["images"])
    assert record["source"] == "url" and record["format"] == "JPEG"
    assert record["sha256"] == hashlib.sha256(image_host.jpeg).hexdigest()
    # The model saw the fetched picture: the same bytes sent inline get the same greedy answer.
    jpeg_uri = data_uri(image_host.jpeg, "image/jpeg")
    inline = greedy(client, model, picture_turn(jpeg_uri))
    assert from_url == inline.choices[0].message.content
    assert json.loads(last_row(vision_server)["images"])[0]["sha256"] == record["sha256"]

    both = greedy(client, model, picture_turn(data_uri(image_bytes("red")), jpeg_uri))
    swapped = greedy(client, model, picture_turn(jpeg_uri, data_uri(image_bytes("red"))))
    assert both.usage.prompt_tokens == swapped.usage.prompt_tokens
    rows = vision_server.log_rows()
    assert [r["format"] for r in json.loads(rows[-2]["images"])] == ["PNG", "JPEG"]
    assert [r["format"] for r in json.loads(rows[-1]["images"])] == ["JPEG", "PNG"]


def test_images_across_turns_in_order(client, vision_server):
    messages = [
        *picture_turn(data_uri(image_bytes("red"))),
        {"role": "assistant", "content": "A red square."},
        {"role": "user", "content": [image_part(data_uri(image_bytes("blue"))), {"type": "text", "text": "And this?"}]},
    ]
    response = greedy(client, "tiny-gemma3-vision", messages)
    assert response.choices[0].finish_reason in ("stop", "length")
    records = json.loads(last_row(vision_server)["images"])
    assert [r["part"] for r in records] == ["messages[0].content[1]", "messages[2].content[0]"]
    assert [r["sha256"] for r in records] == [hashlib.sha256(image_bytes(k)).hexdigest() for k in ("red", "blue")]


BAD_IMAGES = {
    "bad base64": ("data:image/png;base64,@@not-base64@@", "invalid_image"),
    "not an image": (data_uri(b"just some text, no pixels here"), "invalid_image"),
    "too large": (data_uri(image_bytes("checker") + b"\0" * 300_000), "invalid_image"),  # cap: 256 KiB
    "unreachable url": ("http://127.0.0.1:9/none.png", "invalid_image"),
    "url not an image": ("{host}/notes.txt", "invalid_image"),
    "url 404": ("{host}/missing.png", "invalid_image"),
    "not a url": ("ftp://127.0.0.1:9/x.png", "invalid_image"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_get_a_400_naming_the_part_and_are_logged(client, vision_server, image_host, case):
    url, code = BAD_IMAGES[case]
    url = url.format(host=image_host.url)
    messages = [{"role": "user", "content": [{"type": "text", "text": "look"}, image_part(data_uri(image_bytes("red"))),
                                             image_part(url)]}]
    with pytest.raises(openai.BadRequestError) as caught:
        greedy(client, "tiny-qwen3-vl", messages)
    error = caught.value.body
    assert error["code"] == code and error["param"] == "messages[0].content[2]"
    assert "messages[0].content[2]" in error["message"]
    row = last_row(vision_server)
    assert row["status_code"] == 400 and row["outcome"] == "error" and row["error_code"] == code
    assert row["image_count"] == 2 and len(json.loads(row["images"])) == 1  # the good one was loaded
    # ...and the server keeps serving.
    assert greedy(client, "tiny-qwen3-vl", picture_turn(data_uri(image_bytes("red")))).usage.completion_tokens >= 1


def test_an_image_sent_to_a_text_model_is_refused(client, vision_server):
    with pytest.raises(openai.BadRequestError) as caught:
        greedy(client, "smollm2", picture_turn(data_uri(image_bytes("red"))))
    assert caught.value.body["code"] == "image_not_supported"
    assert caught.value.body["param"] == "messages[0].content[1]"
    assert "smollm2-135m-instruct" in caught.value.body["message"]
    assert last_row(vision_server)["error_code"] == "image_not_supported"


def test_text_and_vision_models_swap_both_ways(client, vision_server):
    text = greedy(client, "smollm2", [{"role": "user", "content": "What is the capital of France?"}], max_tokens=20)
    assert "Paris" in text.choices[0].message.content
    assert greedy(client, "tiny-gemma3-vision", [{"role": "user", "content": "Hello"}]).usage.completion_tokens >= 1
    assert vision_server.health()["loaded_model"] == "tiny-gemma3-vision"
    assert greedy(client, "tiny-qwen3-vl", picture_turn(data_uri(image_bytes("blue")))).usage.completion_tokens >= 1
    again = greedy(client, "smollm2", [{"role": "user", "content": "What is the capital of France?"}], max_tokens=20)
    assert again.choices[0].message.content == text.choices[0].message.content
    swaps = [r["swapped_from"] for r in vision_server.log_rows()[-4:]]
    assert swaps[1:] == ["smollm2-135m-instruct", "tiny-gemma3-vision", "tiny-qwen3-vl"]


# Only loopback spellings reach a live server: a regressed guard then connects to this machine,
# never out of it. The other non-public addresses are held to the guard in tests/test_images.py.
LOOPBACK_SPELLINGS = ["127.0.0.1", "[::1]", "localhost", "127.1", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]"]


def test_private_image_urls_are_refused_by_default(tmp_path, tiny_qwen3_vl_dir, image_host):
    models = {"default": "tiny-qwen3-vl", "models": [
        {"id": "tiny-qwen3-vl", "source": {"path": str(tiny_qwen3_vl_dir)}, "backend": "vision"}]}
    with LiveServer(tmp_path, models).start() as server:
        guarded = server.openai(timeout=60)
        fetched_before = len(image_host.seen)
        for host in LOOPBACK_SPELLINGS:
            with pytest.raises(openai.BadRequestError) as caught:
                greedy(guarded, "tiny-qwen3-vl", picture_turn(f"http://{host}:{image_host.port}/cat.jpg"))
            assert caught.value.body["param"] == "messages[0].content[1]"
            assert caught.value.body["code"] == "invalid_image"
            assert "loopback, private, link-local or metadata" in caught.value.body["message"]
        assert len(server.log_rows()) == len(LOOPBACK_SPELLINGS)
        assert len(image_host.seen) == fetched_before  # not one request reached the image host


@pytest.mark.parametrize("model", FIXTURES)
def test_a_follow_up_turn_reuses_the_cached_image_prefix(client, model):
    image = data_uri(image_bytes("checker"))
    first = greedy(client, model, picture_turn(image))
    follow_up = [*picture_turn(image), {"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "Say more."}]
    second = greedy(client, model, follow_up)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert first.usage.prompt_tokens <= cached < second.usage.prompt_tokens
    # Another picture at the same place shares no prefix with it.
    other = [*picture_turn(data_uri(image_bytes("stripes"))), *follow_up[1:]]
    assert greedy(client, model, other).usage.prompt_tokens_details.cached_tokens == 0


def test_a_gemma_turn_past_the_sliding_window_reuses_the_cache(client):
    """Gemma 3's sliding-window layers keep every token up to
    MLX_SERVER_PROMPT_CACHE_FULL_KV_TOKENS, so a conversation past the window (512 tokens on
    the fixture) still reuses its prefix."""
    image = data_uri(image_bytes("red"))
    long_text = "Describe every ship in the harbour, one by one, with its flag. " * 50
    first = greedy(client, "tiny-gemma3-vision", picture_turn(image, text=long_text))
    assert first.usage.prompt_tokens > 512
    follow_up = [*picture_turn(image, text=long_text), {"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "Which one is the oldest?"}]
    second = greedy(client, "tiny-gemma3-vision", follow_up)
    assert first.usage.prompt_tokens <= second.usage.prompt_tokens_details.cached_tokens < second.usage.prompt_tokens
