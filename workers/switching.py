"""Device-switch commands: the API puts one on each target worker's command list and waits for the replies."""

from __future__ import annotations

import time
from typing import cast

import msgspec

from workers.redis_client import RedisConnection
from workers.redis_keys import control_key, reply_key
from workers.registry import SwitchResult

COMMAND_TTL_S = 3600


class SwitchCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Sent to one worker's command list; its `SwitchResult` goes to the command's reply list."""

    command_id: str
    device: str


_command_decoder = msgspec.msgpack.Decoder(SwitchCommand)
_result_decoder = msgspec.msgpack.Decoder(SwitchResult)
_encoder = msgspec.msgpack.Encoder()


async def next_command(connection: RedisConnection, worker_id: str, timeout: float) -> SwitchCommand | None:
    """Wait up to `timeout` seconds for a command to this worker."""
    with connection.reachable():
        popped = await connection.client.blpop([control_key(worker_id)], timeout=timeout)
    return None if popped is None else _command_decoder.decode(cast(bytes, popped[1]))


async def reply(connection: RedisConnection, command_id: str, result: SwitchResult) -> None:
    with connection.reachable():
        async with connection.client.pipeline() as pipe:
            pipe.rpush(reply_key(command_id), _encoder.encode(result))
            pipe.expire(reply_key(command_id), COMMAND_TTL_S)
            await pipe.execute()


async def send_switch(connection: RedisConnection, worker_ids: list[str], command: SwitchCommand) -> None:
    with connection.reachable():
        async with connection.client.pipeline(transaction=False) as pipe:
            for worker_id in worker_ids:
                pipe.rpush(control_key(worker_id), _encoder.encode(command))
                pipe.expire(control_key(worker_id), COMMAND_TTL_S)
            await pipe.execute()


async def switch_replies(
    connection: RedisConnection, command_id: str, count: int, timeout: float
) -> list[SwitchResult]:
    """Up to `count` replies to a switch command, waiting at most `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    replies: list[SwitchResult] = []
    while len(replies) < count and (left := deadline - time.monotonic()) > 0:
        # short waits: a blocking call must end well within the client's socket timeout
        with connection.reachable():
            popped = await connection.client.blpop([reply_key(command_id)], timeout=min(max(left, 0.01), 10.0))
        if popped is not None:
            replies.append(_result_decoder.decode(cast(bytes, popped[1])))
    return replies
