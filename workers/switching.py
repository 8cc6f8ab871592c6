"""Device-switch commands: the API puts one on each target worker's control list and waits for the replies."""

from __future__ import annotations

import time

import msgspec
import redis
import redis.asyncio as aioredis

from workers.registry import SwitchResult

COMMAND_TTL_S = 3600


class SwitchCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Sent to one worker's control list; its `SwitchResult` goes to the command's reply list."""

    command_id: str
    device: str


def control_key(worker_id: str) -> str:
    return f"ocrserve:worker:{worker_id}:control"


def reply_key(command_id: str) -> str:
    return f"ocrserve:switch:{command_id}"


_command_decoder = msgspec.msgpack.Decoder(SwitchCommand)
_result_decoder = msgspec.msgpack.Decoder(SwitchResult)
_encoder = msgspec.msgpack.Encoder()


def next_command(client: redis.Redis, worker_id: str, timeout: float) -> SwitchCommand | None:
    """Wait up to `timeout` seconds for a command to this worker."""
    popped = client.blpop([control_key(worker_id)], timeout=timeout)
    return None if popped is None else _command_decoder.decode(popped[1])


def reply(client: redis.Redis, command_id: str, result: SwitchResult) -> None:
    with client.pipeline() as pipe:
        pipe.rpush(reply_key(command_id), _encoder.encode(result))
        pipe.expire(reply_key(command_id), COMMAND_TTL_S)
        pipe.execute()


async def send_switch(client: aioredis.Redis, worker_ids: list[str], command: SwitchCommand) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for worker_id in worker_ids:
            pipe.rpush(control_key(worker_id), _encoder.encode(command))
            pipe.expire(control_key(worker_id), COMMAND_TTL_S)
        await pipe.execute()


async def switch_replies(client: aioredis.Redis, command_id: str, count: int, timeout: float) -> list[SwitchResult]:
    """Up to `count` replies to a switch command, waiting at most `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    replies: list[SwitchResult] = []
    while len(replies) < count and (left := deadline - time.monotonic()) > 0:
        # short waits: a blocking call must end well within the client's socket timeout
        popped = await client.blpop([reply_key(command_id)], timeout=min(max(left, 0.01), 10.0))
        if popped is not None:
            replies.append(_result_decoder.decode(popped[1]))
    return replies
