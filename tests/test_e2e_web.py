"""The pages in a real browser: headless Chromium (the system's, never a downloaded one) driven
by Playwright against a live server on SmolLM2 and the tiny Qwen3-VL fixture. Each test also
checks that the page asked nothing of any other host.

MLX_SERVER_SCREENSHOTS=docs/screenshots makes the tests save the README's screenshots there."""
from __future__ import annotations

import base64
import io
import json
import os
import time
from pathlib import Path

import pytest

from testkit.live import LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path(os.environ.get("MLX_SERVER_CHROMIUM", "/usr/bin/chromium"))
SHOTS = os.environ.get("MLX_SERVER_SCREENSHOTS")
SMOLLM2 = "smollm2-135m-instruct"
VISION = "tiny-qwen3-vl"
ADMIN = ("admin", "admin-password")
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Tokyo"]}},
                   "required": ["city"], "additionalProperties": False}}}]  # bounded: the fixture has random weights

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; CI installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory, smollm2_dir, tiny_qwen3_vl_dir):
    root = tmp_path_factory.mktemp("web")
    models = {"default": "smollm2", "models": [
        {"id": SMOLLM2, "aliases": ["smollm2"], "source": {"path": str(smollm2_dir)}, "context_length": 2048},
        {"id": VISION, "source": {"path": str(tiny_qwen3_vl_dir)}, "backend": "vision",
         "tool_format": "qwen_tool_call", "capabilities": ["chat", "vision"], "fixture": True},
    ]}
    with LiveServer(root, models).start() as server:
        server.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                     f"User.objects.create_superuser({ADMIN[0]!r}, '', {ADMIN[1]!r})")
        yield server


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, web_server):
    """A fresh browser context on a laptop-sized window; afterwards, no request left this server."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(180_000)  # generous: 2 CPU cores shared with the rest of the suite
    yield page
    context.close()
    assert not errors, f"script errors: {errors}"
    elsewhere = [u for u in requested if not u.startswith((web_server.url, "data:", "blob:"))]
    assert not elsewhere, f"requests to other hosts: {elsewhere}"


def screenshot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def chat_rows(server: LiveServer) -> list[dict]:
    return [r for r in server.log_rows() if r["endpoint"] == "/v1/chat/completions"]


def open_playground(page, server: LiveServer, model: str):
    page.goto(f"{server.url}/playground/?model={model}")
    page.wait_for_selector("body[data-ready='1']")
    assert page.input_value("#model") == model


def send(page, text: str, max_tokens: int) -> None:
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#temperature", "0")
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")  # the keyboard sends


def wait_answer(page):
    page.wait_for_selector(".msg.assistant:last-child[data-finish]")
    return page.locator(".msg.assistant").last


STREAMING_TEXT = """() => { const m = document.querySelector('.msg.assistant.streaming .content');
                            return m && m.textContent.length > 0; }"""


def test_front_page_shows_the_server_and_its_models(page, web_server):
    assert f"Front page: {web_server.url}/" in web_server.log_path.read_text()  # what ./run.sh prints
    page.goto(f"{web_server.url}/")
    for model in (SMOLLM2, VISION):
        assert page.locator(f"tr[data-model='{model}']").is_visible()
    assert VISION in page.locator("#models").inner_text() and "vision" in page.locator(f"tr[data-model='{VISION}']").inner_text()
    assert page.inner_text("#openai-base") == f"{web_server.url}/v1"
    assert page.inner_text("[data-field='device']").strip()
    screenshot(page, "front")
    page.get_by_role("link", name="Playground").first.click()
    page.wait_for_selector("body[data-ready='1']")


def test_playground_streams_an_answer_with_its_figures(page, web_server):
    open_playground(page, web_server, SMOLLM2)
    assert not page.locator("#attach-label").is_visible()  # a text model takes no image
    send(page, "Count from one to thirty, in words.", max_tokens=12)
    page.wait_for_function(STREAMING_TEXT)  # text on the page while the answer is still coming
    answer = wait_answer(page)
    assert answer.get_attribute("data-finish") in ("stop", "length")
    assert int(answer.get_attribute("data-chunks")) > 1
    stats = answer.locator(".stats").inner_text()
    assert "TTFT" in stats and "tok/s" in stats and "completion tokens" in stats
    assert answer.locator(".content").inner_text().strip()
    screenshot(page, "playground")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "playground-phone")


def test_stop_aborts_the_stream_and_the_row_says_cancelled(page, web_server):
    open_playground(page, web_server, SMOLLM2)
    before = len(chat_rows(web_server))
    send(page, "Write a very long story about a dragon and a knight.", max_tokens=1500)
    page.wait_for_function(STREAMING_TEXT)
    page.click("#stop")
    answer = wait_answer(page)
    assert answer.get_attribute("data-finish") == "stopped"
    deadline = time.time() + 20
    while time.time() < deadline and len(chat_rows(web_server)) == before:
        time.sleep(0.2)
    row = chat_rows(web_server)[-1]
    assert row["outcome"] == "cancelled" and row["completion_tokens"] < 1500


def png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


def test_an_image_goes_to_the_vision_model(page, web_server):
    open_playground(page, web_server, VISION)
    assert page.locator("#attach-label").is_visible()
    page.set_input_files("#image", {"name": "red.png", "mimeType": "image/png", "buffer": png()})
    send(page, "What is in this image?", max_tokens=6)
    answer = wait_answer(page)
    assert answer.get_attribute("data-finish") in ("stop", "length")
    assert page.locator(".msg.user img.thumb").count() == 1
    row = chat_rows(web_server)[-1]
    assert (row["resolved_model"], row["image_count"], row["outcome"]) == (VISION, 1, "ok")


def test_a_forced_tool_call_shows_as_a_card(page, web_server):
    open_playground(page, web_server, VISION)  # its format (qwen_tool_call) has a call grammar
    page.click("summary:has-text('Tools')")
    page.fill("#tools", json.dumps(TOOLS))
    page.select_option("#tool-choice", "required")
    page.uncheck("#parallel-tools")  # one call, then the answer ends
    send(page, "What is the weather in Paris?", max_tokens=96)
    answer = wait_answer(page)
    assert answer.get_attribute("data-finish") == "tool_calls", page.inner_text("#error")
    card = answer.locator(".toolcard")
    assert "get_weather" in card.locator(".toolname").inner_text()
    assert "city" in json.loads(card.locator(".toolargs").inner_text())
    screenshot(page, "playground-tools")


def test_the_schema_box_constrains_the_answer(page, web_server):
    open_playground(page, web_server, VISION)
    page.click("summary:has-text('Structured output')")
    page.fill("#schema", json.dumps({"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}},
                                     "required": ["answer"], "additionalProperties": False}))
    send(page, "Is the sky blue? Answer in JSON.", max_tokens=48)
    answer = wait_answer(page)
    assert answer.get_attribute("data-finish") == "stop", page.inner_text("#error")
    assert json.loads(answer.locator(".content").inner_text())["answer"] in ("yes", "no")


def test_admin_dashboard_and_conversation_view(page, web_server):
    web_server.openai().chat.completions.create(model=VISION, max_tokens=4, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe it."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png()).decode()}}]}])
    row = chat_rows(web_server)[-1]
    page.goto(f"{web_server.url}/admin/login/?next=/admin/inference/requestlog/dashboard/")
    page.fill("#id_username", ADMIN[0])
    page.fill("#id_password", ADMIN[1])
    page.press("#id_password", "Enter")
    page.wait_for_function("() => window.dashboardCharts && Object.keys(window.dashboardCharts).length === 6")
    series = page.evaluate("window.dashboardCharts['chart-rpm'].data.datasets.map(d => d.label)")
    assert f"{VISION} · ok" in series
    screenshot(page, "dashboard")

    page.goto(f"{web_server.url}/admin/inference/requestlog/{row['id']}/change/")
    user = page.locator(".turn.user")
    assert "Describe it." in user.inner_text() and "sha256" in user.locator(".turn-image").inner_text()
    assert page.locator(".turn.assistant").count() == 1
    screenshot(page, "conversation")
    page.click("#replay-link")
    page.wait_for_selector("body[data-ready='1']")
    assert page.input_value("#model") == VISION and page.input_value("#prompt") == "Describe it."
