// The playground: a chat client of /v1/chat/completions (SSE) in the browser, nothing else.
"use strict";
const $ = (id) => document.getElementById(id);
const KEY_STORE = "mlx-server-api-key";
let models = [];
let history = [];        // the conversation as OpenAI messages (without the system prompt)
let controller = null;   // the request in flight: abort() stops it, and the server cancels the job

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key");
  if (key && key.value) h.Authorization = `Bearer ${key.value}`;
  return h;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function selectedModel() {
  return models.find((m) => m.id === $("model").value);
}

function showError(message) { $("error").textContent = message || ""; }

async function loadModels() {
  showError("");
  const response = await fetch("/v1/models", { headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    showError(body.error ? body.error.message : `GET /v1/models: ${response.status}`);
    return;
  }
  models = body.data.filter((m) => m.capabilities.includes("chat"));  // not the embedding models
  const wanted = new URLSearchParams(location.search).get("model") || $("model").value;
  $("model").replaceChildren(...models.map((m) => {
    const option = el("option", "", m.id + (m.available ? "" : " (unavailable)"));
    option.value = m.id;
    option.disabled = !m.available;
    return option;
  }));
  const pick = models.find((m) => (m.id === wanted || m.aliases.includes(wanted)) && m.available)
    || models.find((m) => m.loaded) || models.find((m) => m.available);
  if (pick) $("model").value = pick.id;
  modelChanged();
}

function modelChanged() {
  const m = selectedModel();
  const vision = !!m && m.capabilities.includes("vision");
  $("attach-label").hidden = !vision;
  if (!vision) { $("image").value = ""; $("attached").textContent = ""; }
  $("model-note").textContent = m ? `${m.capabilities.join(", ")} · context ${m.context_length}` +
    (m.tool_format !== "none" ? ` · tools (${m.tool_format})` : "") + (m.loaded ? " · loaded" : "") : "";
}

function readImage(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function parseJSONBox(id, what) {
  const text = $(id).value.trim();
  if (!text) return undefined;
  try { return JSON.parse(text); } catch (e) { throw new Error(`${what} is not JSON: ${e.message}`); }
}

function bubble(role) {
  const item = el("li", `msg ${role}`);
  item.append(el("div", "role", role));
  const content = el("div", "content");
  item.append(content);
  $("messages").append(item);
  return item;
}

function renderUser(message) {
  const item = bubble("user");
  const parts = typeof message.content === "string" ? [{ type: "text", text: message.content }] : message.content;
  for (const part of parts) {
    if (part.type === "text") item.querySelector(".content").append(el("p", "", part.text));
    else if (part.type === "image_url") {
      const img = el("img", "thumb");
      img.src = part.image_url.url;
      img.alt = "attached image";
      item.querySelector(".content").append(img);
    }
  }
}

function toolCard(call) {
  const card = el("div", "toolcard");
  card.append(el("div", "toolname", `tool call: ${call.function.name}`));
  card.append(el("pre", "toolargs", call.function.arguments));
  return card;
}

function renderAssistant(message) {
  const item = bubble("assistant");
  if (message.content) item.querySelector(".content").textContent = message.content;
  for (const call of message.tool_calls || []) item.append(toolCard(call));
  return item;
}

function renderTool(message) {
  const item = bubble("tool");
  item.querySelector(".content").append(el("pre", "", message.content));
}

function render(message) {
  if (message.role === "user") renderUser(message);
  else if (message.role === "assistant") renderAssistant(message);
  else if (message.role === "tool") renderTool(message);
}

function requestBody() {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  const body = {
    model: $("model").value,
    messages: messages.concat(history),
    stream: true,
    stream_options: { include_usage: true },
    temperature: Number($("temperature").value),
    max_tokens: Number($("max-tokens").value),
  };
  const tools = parseJSONBox("tools", "Tools");
  if (tools) {
    body.tools = tools;
    body.tool_choice = $("tool-choice").value;
    body.parallel_tool_calls = $("parallel-tools").checked;
  }
  const schema = parseJSONBox("schema", "The JSON Schema");
  if (schema) body.response_format = { type: "json_schema", json_schema: { name: "answer", schema, strict: true } };
  return body;
}

// SSE frames ("data: {...}\n\n") from the response's stream, across chunk boundaries.
async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of frame.split("\n")) if (line.startsWith("data: ")) yield line.slice(6);
    }
  }
}

function setBusy(busy) {
  document.body.dataset.busy = busy ? "1" : "";
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

async function send(event) {
  event.preventDefault();
  if (controller) return;
  showError("");
  const text = $("prompt").value.trim();
  if (!text) return;
  let body;
  const files = [...$("image").files];
  const content = files.length ? [{ type: "text", text }] : text;
  try {
    for (const file of files) content.push({ type: "image_url", image_url: { url: await readImage(file) } });
    history.push({ role: "user", content });
    body = requestBody();
  } catch (e) {
    if (history.length && history[history.length - 1].content === content) history.pop();
    showError(e.message);
    return;
  }
  render(history[history.length - 1]);
  $("prompt").value = "";
  $("image").value = "";
  $("attached").textContent = "";
  const item = bubble("assistant");
  const out = item.querySelector(".content");
  item.classList.add("streaming");
  const stats = el("div", "stats", "waiting…");
  item.append(stats);
  const answer = { role: "assistant", content: "" };
  const calls = [];
  let usage = null, finish = null, first = null, chunks = 0;
  const t0 = performance.now();
  controller = new AbortController();
  setBusy(true);
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!response.ok) {
      const err = await response.json().catch(() => ({}));
      throw new Error(err.error ? err.error.message : `HTTP ${response.status}`);
    }
    for await (const data of sseData(response)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        const delta = choice.delta || {};
        if (delta.content) {
          if (first === null) first = performance.now();
          answer.content += delta.content;
          out.textContent = answer.content;
          chunks += 1;
          item.dataset.chunks = chunks;
        }
        for (const tc of delta.tool_calls || []) {
          if (first === null) first = performance.now();
          if (!calls[tc.index]) calls[tc.index] = { id: tc.id, type: "function", function: { name: "", arguments: "" }, card: null };
          const call = calls[tc.index];
          if (tc.function && tc.function.name) call.function.name += tc.function.name;
          if (tc.function && tc.function.arguments) call.function.arguments += tc.function.arguments;
          const card = toolCard(call);
          if (call.card) call.card.replaceWith(card); else item.insertBefore(card, stats);
          call.card = card;
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
  } catch (e) {
    if (e.name === "AbortError") finish = "stopped";
    else { showError(e.message); finish = "error"; }
  } finally {
    controller = null;
    setBusy(false);
    item.classList.remove("streaming");
  }
  const total = performance.now() - t0;
  if (calls.length) answer.tool_calls = calls.map(({ card, ...call }) => call);
  if (answer.content || calls.length) history.push(answer);
  const parts = [`finish: ${finish || "?"}`];
  if (first !== null) parts.push(`TTFT ${Math.round(first - t0)} ms`);
  if (usage) {
    parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
    const cached = usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens;
    if (cached) parts.push(`${cached} cached`);
    if (first !== null && usage.completion_tokens > 1) {
      parts.push(`${((usage.completion_tokens - 1) / ((performance.now() - first) / 1000)).toFixed(1)} tok/s`);
    }
  }
  parts.push(`${(total / 1000).toFixed(2)} s`);
  stats.textContent = parts.join(" · ");
  item.dataset.finish = finish || "";
}

function stop() { if (controller) controller.abort(); }

function clearChat() {
  stop();
  history = [];
  $("messages").replaceChildren();
  showError("");
}

async function replay(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) { showError(`Could not load the logged request (${response.status}): log into the admin first.`); return; }
  const body = await response.json();
  const messages = body.messages || [];
  const system = messages.filter((m) => m.role === "system" || m.role === "developer");
  $("system").value = system.map((m) => typeof m.content === "string" ? m.content : m.content.map((p) => p.text || "").join("")).join("\n");
  history = messages.filter((m) => m.role !== "system" && m.role !== "developer");
  const last = history[history.length - 1];
  if (last && last.role === "user") {
    history.pop();
    $("prompt").value = typeof last.content === "string" ? last.content : last.content.filter((p) => p.type === "text").map((p) => p.text).join("\n");
  }
  history.forEach(render);
  if (body.temperature !== undefined) $("temperature").value = body.temperature;
  const max = body.max_completion_tokens || body.max_tokens;
  if (max) $("max-tokens").value = max;
  if (body.tools) $("tools").value = JSON.stringify(body.tools, null, 2);
  if (typeof body.tool_choice === "string") $("tool-choice").value = body.tool_choice;
  const format = body.response_format;
  if (format && format.type === "json_schema") $("schema").value = JSON.stringify(format.json_schema.schema, null, 2);
  if (body.model && models.some((m) => m.id === body.model || m.aliases.includes(body.model))) {
    $("model").value = (models.find((m) => m.id === body.model || m.aliases.includes(body.model))).id;
    modelChanged();
  }
}

async function start() {
  const key = $("api-key");
  if (key) {
    key.value = localStorage.getItem(KEY_STORE) || "";
    key.addEventListener("change", () => { localStorage.setItem(KEY_STORE, key.value); loadModels(); });
  }
  $("model").addEventListener("change", modelChanged);
  $("composer").addEventListener("submit", send);
  $("stop").addEventListener("click", stop);
  $("clear").addEventListener("click", clearChat);
  $("image").addEventListener("change", () => {
    $("attached").textContent = [...$("image").files].map((f) => `${f.name} (${Math.round(f.size / 1024)} KiB)`).join(", ");
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") stop(); });
  await loadModels();
  const replayUrl = JSON.parse($("replay-url").textContent);
  if (replayUrl) await replay(replayUrl);
  document.body.dataset.ready = "1";
}

start();
