"use strict";
// The playground talks to the public API only, as any client would: POST /v1/responses (background, streamed,
// layout output), GET /v1/responses/{id} for progress, /cancel, and /pages/{n} for the page images the boxes
// are drawn on. The key, if any, stays in this tab (sessionStorage).

const $ = (id) => document.getElementById(id);
const LABEL_COLOURS = { title: "#2457c5", text: "#2f9e44", table: "#d9480f", image: "#9c36b5", figure: "#9c36b5" };
const SEPARATOR = "\n\n<--- Page Split --->\n\n";

const state = { file: null, job: null, pages: [], poll: null, urls: [] };

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  state.urls.push(url);
  return url;
}

function headers() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function apiError(response) {
  try {
    const body = await response.json();
    return body.error?.message || `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setStatus(text) {
  $("status").textContent = text;
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function contentParts() {
  const parts = [];
  const url = $("url").value.trim();
  if (state.file) {
    const data = await readAsDataUrl(state.file);
    if (state.file.type === "application/pdf" || state.file.name.toLowerCase().endsWith(".pdf")) {
      parts.push({ type: "input_file", filename: state.file.name, file_data: data });
    } else {
      parts.push({ type: "input_image", image_url: data });
    }
  } else if (url) {
    parts.push({ type: "input_image", image_url: url });
  }
  if (!$("preset").value && $("prompt").value.trim()) parts.push({ type: "input_text", text: $("prompt").value.trim() });
  return parts;
}

async function requestBody() {
  const ocr = { output_format: "layout" };
  if ($("preset").value) ocr.preset = $("preset").value;
  if ($("mode").value) ocr.mode = $("mode").value;
  if ($("pages").value.trim()) ocr.pages = $("pages").value.trim();
  if ($("dpi").value) ocr.dpi = Number($("dpi").value);
  const body = {
    model: state.model,
    input: [{ role: "user", content: await contentParts() }],
    background: true,
    stream: true,
    ocr,
  };
  if ($("max-tokens").value) body.max_output_tokens = Number($("max-tokens").value);
  return body;
}

// ------------------------------------------------------------------ pages

function pageCard(number) {
  let card = state.pages[number - 1];
  if (card) return card;
  const section = document.createElement("article");
  section.className = "page";
  section.dataset.page = number;
  section.innerHTML = `<h2>Page ${number} <span class="state">reading…</span></h2>
    <div class="columns"><div class="figure"></div><div class="rendered"></div><pre class="source"></pre></div>`;
  $("pages-view").append(section);
  card = { section, number, line: null };
  state.pages[number - 1] = card;
  return card;
}

function drawBoxes(figure, page) {
  for (const block of page.blocks) {
    const [x1, y1, x2, y2] = block.box;
    const box = document.createElement("div");
    box.className = "box";
    box.dataset.label = block.label;
    box.dataset.box = block.box.join(",");
    box.style.left = `${(100 * x1) / page.width}%`;
    box.style.top = `${(100 * y1) / page.height}%`;
    box.style.width = `${(100 * (x2 - x1)) / page.width}%`;
    box.style.height = `${(100 * (y2 - y1)) / page.height}%`;
    box.style.setProperty("--box", Object.hasOwn(LABEL_COLOURS, block.label) ? LABEL_COLOURS[block.label] : "#d9480f");
    box.title = block.text;
    const label = document.createElement("span");
    label.textContent = block.label;
    box.append(label);
    figure.append(box);
  }
}

async function showPageImage(card, page) {
  const figure = card.section.querySelector(".figure");
  if (!page.width || !state.job) return;
  let response;
  try {
    response = await fetch(`/v1/responses/${state.job}/pages/${page.page}`, { headers: headers() });
  } catch (error) {
    figure.textContent = `no page image: ${error.message}`;
    return;
  }
  if (!response.ok) {
    figure.textContent = `no page image: ${await apiError(response)}`;
    return;
  }
  const image = new Image();
  image.alt = `page ${page.page}`;
  image.src = objectUrl(await response.blob());
  figure.append(image);
  drawBoxes(figure, page);
}

function showPage(line) {
  const page = JSON.parse(line);
  const card = pageCard(page.page);
  card.line = line;
  const confidence = page.confidence ? ` · confidence ${page.confidence.mean.toFixed(2)}` : "";
  const blocks = `${page.blocks.length} block${page.blocks.length === 1 ? "" : "s"}`;
  card.section.querySelector(".state").textContent = `done · ${blocks}${confidence}`;
  card.section.classList.add("done");
  card.section.querySelector(".rendered").innerHTML = window.renderMarkdown(page.text);
  card.section.querySelector(".source").textContent = page.text;
  showPageImage(card, page);
}

function showProgress(done, total) {
  if (!total) return;
  for (let number = 1; number <= total; number++) pageCard(number);
  $("progress").hidden = false;
  $("progress").max = total;
  $("progress").value = done;
  setStatus(`${done} of ${total} pages read`);
}

function offerDownloads() {
  const lines = state.pages.filter((card) => card && card.line).map((card) => card.line);
  if (!lines.length) return;
  const markdown = lines.map((line) => JSON.parse(line).text).join(SEPARATOR) + "\n";
  const link = (id, text, type) => {
    const anchor = $(id);
    anchor.href = objectUrl(new Blob([text], { type }));
    anchor.download = `${state.name}.${id === "download-md" ? "md" : "jsonl"}`;
  };
  link("download-md", markdown, "text/markdown");
  link("download-jsonl", lines.join("\n") + "\n", "application/jsonl");
  $("downloads").hidden = false;
}

// ------------------------------------------------------------------ the job

function finish(status, message) {
  clearInterval(state.poll);
  state.poll = null;
  $("start").disabled = false;
  $("cancel").disabled = true;
  if (message) showError(message);
  const done = state.pages.filter((card) => card && card.line).length;
  setStatus(`${status}: ${done} of ${state.pages.length || done} pages read`);
  offerDownloads();
}

function onEvent(type, data) {
  if (type === "response.created") {
    state.job = data.response.id;
    $("cancel").disabled = false;
    state.poll = setInterval(pollProgress, 1000);
  } else if (type === "response.in_progress") {
    showProgress(data.response.ocr_progress.pages_done, data.response.ocr_progress.pages_total);
  } else if (type === "response.output_text.delta") {
    state.buffer += data.delta;
    let end;
    while ((end = state.buffer.indexOf("\n")) >= 0) {
      const line = state.buffer.slice(0, end);
      state.buffer = state.buffer.slice(end + 1);
      if (line.trim()) showPage(line);
    }
  } else if (type === "response.completed" || type === "response.incomplete" || type === "response.failed") {
    const response = data.response;
    showProgress(response.ocr_progress.pages_done, response.ocr_progress.pages_total);
    finish(response.status, response.error ? response.error.message : "");
  }
}

async function pollProgress() {
  if (!state.job) return;
  let response;
  try {
    response = await fetch(`/v1/responses/${state.job}`, { headers: headers() });
  } catch {
    return; // the next poll tries again; the stream says how the job ends
  }
  if (!response.ok) return;
  const job = await response.json();
  if (job.status === "queued" || job.status === "in_progress") {
    showProgress(job.ocr_progress.pages_done, job.ocr_progress.pages_total);
  }
}

async function readEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value;
    let end;
    while ((end = pending.indexOf("\n\n")) >= 0) {
      const frame = pending.slice(0, end);
      pending = pending.slice(end + 2);
      const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data) {
        const event = JSON.parse(data);
        onEvent(event.type, event);
      }
    }
  }
}

async function start(event) {
  event.preventDefault();
  showError("");
  if (!state.file && !$("url").value.trim()) {
    showError("choose a file or give a URL first");
    return;
  }
  sessionStorage.setItem("ocrserve-key", $("api-key").value);
  state.urls.splice(0).forEach((url) => URL.revokeObjectURL(url)); // the last run's page images and downloads
  Object.assign(state, { job: null, pages: [], buffer: "", name: (state.file?.name || "document").replace(/\.[^.]*$/, "") });
  $("pages-view").replaceChildren();
  $("downloads").hidden = true;
  $("progress").hidden = true;
  $("start").disabled = true;
  setStatus("sending…");
  try {
    const response = await fetch("/v1/responses", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers() },
      body: JSON.stringify(await requestBody()),
    });
    if (!response.ok) {
      finish("refused", await apiError(response));
      return;
    }
    setStatus("queued");
    await readEvents(response.body);
  } catch (error) {
    finish("failed", `the request failed: ${error.message}`);
  }
  if (state.poll) finish("ended", "the stream ended before the response did; reload its id to see it");
}

async function cancel() {
  if (!state.job) return;
  $("cancel").disabled = true;
  setStatus("cancelling…");
  const response = await fetch(`/v1/responses/${state.job}/cancel`, { method: "POST", headers: headers() });
  if (!response.ok) showError(await apiError(response));
}

async function loadModel() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) {
    $("model").textContent = response.status === 401 ? "enter the API key" : await apiError(response);
    return;
  }
  state.model = (await response.json()).data[0].id;
  $("model").textContent = `model: ${state.model}`;
}

function chooseFile(file) {
  state.file = file || null;
  $("file-name").textContent = file ? `${file.name} (${Math.ceil(file.size / 1024)} KiB)` : "no file chosen";
}

function setUp() {
  $("api-key").value = sessionStorage.getItem("ocrserve-key") || "";
  $("api-key").addEventListener("change", loadModel);
  $("file").addEventListener("change", () => chooseFile($("file").files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    chooseFile(event.dataTransfer.files[0]);
  });
  $("show-boxes").addEventListener("change", () =>
    $("pages-view").classList.toggle("hide-boxes", !$("show-boxes").checked),
  );
  $("request").addEventListener("submit", start);
  $("cancel").addEventListener("click", cancel);
  loadModel();
}

setUp();
