"""Resolve chat content at the edge: decode data URLs and files, fetch URLs, sniff and count pages.

Every bad input fails here with a 400, before anything is queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from app.context import AppContext
from app.errors import ApiError
from app.fetching import fetch_url
from app.protocol.chat import ChatMessage, FileData, FilePart, ImageUrlPart, TextPart
from app.protocol.common import OcrOptions
from ocr_engine.documents import check_page_total, decode_base64_payload, load_document
from ocr_engine.prompts import resolve_instruction, text_prompt
from ocr_engine.request import Document


@dataclass(frozen=True, slots=True)
class ResolvedChat:
    prompt: str
    documents: tuple[Document, ...]


ParamOf = Callable[[int, int], str]
"""Names content part `j` of message `i` in error messages (`messages[i].content[j]` for chat)."""


def chat_param(i: int, j: int) -> str:
    return f"messages[{i}].content[{j}]"


def message_text(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text for part in message.content or () if isinstance(part, TextPart))


async def _image_bytes(ctx: AppContext, url: str, param: str) -> bytes:
    if url.startswith("data:"):
        return decode_base64_payload(url, param=param)
    if url.startswith(("http://", "https://")):
        return await fetch_url(url, policy=ctx.url_policy, max_bytes=ctx.settings.max_document_bytes, client=ctx.http)
    raise ApiError(400, "image_url.url must be a data URL or an http(s) URL", code="invalid_url", param=param)


def _file_bytes(file: FileData, param: str) -> bytes:
    if file.file_data:
        return decode_base64_payload(file.file_data, param=f"{param}.file_data")
    if file.file_id:
        raise ApiError(400, "file_id is not supported; send the file inline as file_data", param=f"{param}.file_id")
    raise ApiError(400, "a file part needs file_data (base64 or a data URL)", param=f"{param}.file_data")


async def _documents(
    ctx: AppContext, messages: list[ChatMessage], options: OcrOptions, param_of: ParamOf
) -> list[Document]:
    limits = ctx.settings.document_limits
    documents: list[Document] = []
    for i, message in enumerate(messages):
        if message.role != "user" or not isinstance(message.content, list):
            continue
        for j, part in enumerate(message.content):
            param = param_of(i, j)
            if isinstance(part, ImageUrlPart):
                data, name = await _image_bytes(ctx, part.image_url.url, f"{param}.image_url.url"), ""
            elif isinstance(part, FilePart):
                data, name = _file_bytes(part.file, param), part.file.filename or ""
            else:
                continue
            documents.append(
                await asyncio.to_thread(load_document, data, name=name, pages=options.pages, limits=limits)
            )
    check_page_total(documents, limits)
    return documents


async def resolve_chat(
    ctx: AppContext, messages: list[ChatMessage], options: OcrOptions, param_of: ParamOf = chat_param
) -> ResolvedChat:
    """Documents from the user messages, in order; the instruction is the last user message's text."""
    documents = await _documents(ctx, messages, options, param_of)
    if documents:
        last_user = next((m for m in reversed(messages) if m.role == "user"), None)
        user_text = message_text(last_user).strip() if last_user else ""
        return ResolvedChat(prompt=resolve_instruction(user_text or None, options.preset), documents=tuple(documents))
    turns = [(m.role, message_text(m)) for m in messages]
    return ResolvedChat(prompt=text_prompt(turns), documents=())
