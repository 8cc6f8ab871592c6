"""OCR a PNG and a PDF through ocrserve with the openai SDK: `python samples/ocr_with_openai.py [BASE_URL]`."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

from openai import OpenAI

HERE = Path(__file__).parent


def data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def main() -> None:
    client = OpenAI(base_url=sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/v1", api_key="none")
    model = client.models.list().data[0].id

    image = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": data_url(HERE / "page.png", "image/png")}}],
            }
        ],
        max_tokens=512,
    )
    print("PNG →", image.choices[0].message.content, "\n", image.usage)

    pdf_part = {
        "type": "file",
        "file": {"filename": "report.pdf", "file_data": data_url(HERE / "report.pdf", "application/pdf")},
    }
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [{"type": "text", "text": "Free OCR."}, pdf_part]}],
        max_tokens=512,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage:
            print("\n", chunk.usage)


if __name__ == "__main__":
    main()
