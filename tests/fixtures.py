"""Helpers for the end-to-end tests: documents made in code, a real `ocrserve serve` subprocess, a local web server.

Nothing here downloads anything: the server loads a tiny random checkpoint written by `ocr_engine.testing`.
"""

from __future__ import annotations

import base64
import io
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pymupdf
from PIL import Image, ImageDraw

PAGE_SPLIT = "<--- Page Split --->"
SERVED_NAME = "tiny-ocr2"
STARTUP_DEADLINE_S = 120.0
STOP_GRACE_S = 15.0
HTTP_TIMEOUT = httpx.Timeout(120.0, connect=10.0)

# ---------------------------------------------------------------- documents


def page_image(
    text: str = "Invoice 2026-11-23\nTotal: 1,234.56 EUR", size: tuple[int, int] = (480, 320)
) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(text.splitlines()):
        draw.text((24, 24 + 28 * i), line, fill="black")
    draw.rectangle((20, size[1] - 80, size[0] - 20, size[1] - 20), outline="black")
    return image


def png_bytes(image: Image.Image | None = None) -> bytes:
    out = io.BytesIO()
    (image or page_image()).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(image: Image.Image | None = None) -> bytes:
    out = io.BytesIO()
    (image or page_image()).save(out, "JPEG", quality=85)
    return out.getvalue()


def pdf_bytes(pages: int, size: tuple[float, float] = (200, 260), **save_options: object) -> bytes:
    """A PDF of `pages` equally sized small pages (small, so each page is one global view, no tiles)."""
    document = pymupdf.open()
    for index in range(pages):
        page = document.new_page(width=size[0], height=size[1])
        page.insert_text((24, 48), f"Page {index + 1} of {pages}", fontsize=14)
        page.insert_text((24, 80), "Total: 12.50 EUR", fontsize=11)
    data = document.tobytes(**save_options)
    document.close()
    return data


def encrypted_pdf_bytes() -> bytes:
    return pdf_bytes(1, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret-user", owner_pw="secret-owner")


def huge_blank_png(width: int = 6000, height: int = 6000) -> bytes:
    """Many pixels, few bytes: a white greyscale page with one line on it."""
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).line((0, 0, width // 10, height // 10), fill=0)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def noise_png(width: int = 1000, height: int = 1000, seed: int = 7) -> bytes:
    """An incompressible PNG (about 3 MB for 1000x1000 RGB)."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_message(url: str, text: str | None = None) -> list[dict]:
    content: list[dict] = [{"type": "image_url", "image_url": {"url": url}}]
    if text:
        content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def file_message(data: bytes, filename: str = "doc.pdf", mime: str = "application/pdf") -> list[dict]:
    part = {"type": "file", "file": {"filename": filename, "file_data": data_url(data, mime)}}
    return [{"role": "user", "content": [part]}]


# ---------------------------------------------------------------- ports


def image_prompt_tokens(http: httpx.Client, model: str, page: bytes, **ocr: str) -> int:
    """`usage.prompt_tokens` of a one-token chat completion over one PNG page, with `ocr` options."""
    body = {"model": model, "messages": image_message(data_url(page, "image/png")), "max_tokens": 1, "ocr": ocr}
    reply = http.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()["usage"]["prompt_tokens"]


def free_port() -> int:
    """A port nothing listens on right now (bound to port 0 and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the ocrserve server


@dataclass
class ServerHandle:
    url: str
    model: str
    log_path: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc})"

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT, headers=headers)


def _server_env(checkpoint: Path, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OCRSERVE_")}
    env.update(
        {
            "OCRSERVE_MODEL": str(checkpoint),
            "OCRSERVE_SERVED_MODEL_NAME": SERVED_NAME,
            "OCRSERVE_DEVICE": "cpu",
            "OCRSERVE_HOST": "127.0.0.1",
            "OCRSERVE_PORT": str(port),
            "OCRSERVE_URL_CONNECT_TIMEOUT": "3",
            "OCRSERVE_URL_READ_TIMEOUT": "10",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_GRACE_S)


def spawn(command: str, checkpoint: Path, port: int, log_path: Path, env: Mapping[str, str]) -> subprocess.Popen:
    """`ocrserve <command>` as a subprocess with the test environment, its output in `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", "from ocrserve.cli import main; main()", command],
            env=_server_env(checkpoint, port, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


@contextmanager
def running_server(checkpoint: Path, log_dir: Path, name: str, env: Mapping[str, str]) -> Iterator[ServerHandle]:
    """`ocrserve serve` as a subprocess on a free port; yields once /health says 200; always stopped after."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    process = spawn("serve", checkpoint, port, log_path, env)
    handle = ServerHandle(url=f"http://127.0.0.1:{port}", model=SERVED_NAME, log_path=log_path, process=process)
    try:
        _wait_healthy(handle)
        yield handle
    finally:
        stop_process(process)


@contextmanager
def running_worker(
    checkpoint: Path, log_dir: Path, name: str, redis_url: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """`ocrserve worker` as a subprocess; always stopped after."""
    process = spawn("worker", checkpoint, 0, log_dir / f"{name}.log", {"OCRSERVE_REDIS_URL": redis_url, **(env or {})})
    try:
        yield process
    finally:
        stop_process(process)


@contextmanager
def running_redis(directory: Path, *, appendonly: bool = False, port: int | None = None) -> Iterator[str]:
    """A private `redis-server` on a free port (or `port`), keeping nothing on disk; yields its URL.

    With `appendonly`, every write is fsynced to an append-only file in `directory` (`--appendfsync always`), so
    a redis-server started again on the same directory has all of it back."""
    port = port or free_port()
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if appendonly else ["--appendonly", "no"]
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", *persistence],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(process)


def wait_for_worker(handle: ServerHandle, **headers: str) -> None:
    """Block until a worker has loaded the model: a one-token completion comes back through the queue."""
    with handle.client(**headers) as client:
        reply = client.post("/v1/completions", json={"model": handle.model, "prompt": "Hi", "max_tokens": 1})
        if reply.status_code != 200:
            raise RuntimeError(f"no worker answered: {reply.status_code} {reply.text}; log:\n{handle.log_tail()}")


def _wait_healthy(handle: ServerHandle) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    last = "no answer yet"
    with httpx.Client(timeout=httpx.Timeout(5.0)) as client:
        while time.monotonic() < deadline:
            if handle.process.poll() is not None:
                raise RuntimeError(
                    f"ocrserve exited with {handle.process.returncode} before it was healthy; log:\n{handle.log_tail()}"
                )
            try:
                response = client.get(f"{handle.url}/health")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.25)
    raise RuntimeError(
        f"ocrserve was not healthy within {STARTUP_DEADLINE_S:g}s (last: {last}); log:\n{handle.log_tail()}"
    )


# ---------------------------------------------------------------- the local document server


class _DocHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DocServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.server.hits.append(path)
        if path in self.server.files:
            self._reply(200, self.server.files[path], "image/png")
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/page.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._reply(404, b"not found", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class DocServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: Mapping[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _DocHandler)
        self.files = dict(files)
        self.hits: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


@contextmanager
def running_doc_server(files: Mapping[str, bytes]) -> Iterator[DocServer]:
    """Serves `files` (path → PNG bytes), /redirect (302 → /page.png) and 404 for anything else."""
    server = DocServer(files)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
