"""The stream writer: append an event to its room's stream and return the stream id.

An append is one Lua script, so it is idempotent by (room, sender, client_id): the
script returns the id an earlier append of the same client_id got instead of adding
again. That makes a resend after a dropped connection safe, and a retried command
(redis-py re-sends after a connection error whose reply was lost) safe too.

Concurrent appends are queued and sent together in one pipeline per round trip: under
load that is many appends per network write instead of one.

The script refuses to add to a room that has no epoch record (a new room, or Redis lost
the room's keys): the writer begins one (streams/epochs.py), which raises the stream's
last id above every archived message, and appends again.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from chatroom import redis_keys
from chatroom.domain.events import MessageEvent
from chatroom.domain.stream_ids import StreamId
from chatroom.streams.epochs import StreamEpochs

# KEYS: stream, sent-client-id key, the room's epoch. ARGV: the envelope, ttl seconds. The
# entry's one field is 'event' (domain.events.EVENT_FIELD).
# Returns {1, id} for a new entry, {0, id} for a resend of a known client_id; an error
# starting with NOEPOCH when the room has no epoch (nothing was added).
_APPEND = """
local known = redis.call('GET', KEYS[2])
if known then
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  return {0, known}
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('NOEPOCH the room has no stream epoch')
end
local id = redis.call('XADD', KEYS[1], '*', 'event', ARGV[1])
redis.call('SET', KEYS[2], id, 'EX', ARGV[2])
return {1, id}
"""


@dataclass(frozen=True, slots=True)
class Appended:
    id: StreamId
    duplicate: bool  # a resend: the id is the first append's, nothing new was stored


class StreamWriter:
    def __init__(
        self,
        redis: Redis,
        *,
        client_id_ttl_s: int,
        max_batch: int = 512,
        epochs: StreamEpochs | None = None,
    ) -> None:
        self._redis = redis
        # Without SQL's newest ids (tests of Redis alone) an epoch's floor is the stream's.
        self._epochs = epochs or StreamEpochs(redis)
        self._ttl = client_id_ttl_s
        self._max_batch = max_batch
        self._sha: str | None = None  # the append script, once loaded
        self._queue: list[tuple[MessageEvent, asyncio.Future[Appended]]] = []
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None

    async def append(self, event: MessageEvent) -> Appended:
        """Append and wait for the stream id. Raises redis errors as they come."""
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        self._wakeup.set()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_batches(), name="stream-writer")
        return await future

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for _, future in self._queue:
            if not future.done():
                future.set_exception(ConnectionError("the stream writer is closed"))
        self._queue.clear()

    async def _send_batches(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._send(batch)

    async def _send(self, batch: list[tuple[MessageEvent, asyncio.Future[Appended]]]) -> None:
        try:
            if self._sha is None:
                self._sha = await self._redis.script_load(_APPEND)
            results = await self._pipeline(batch)
            if any(isinstance(r, NoScriptError) for r in results):
                # Redis restarted (or SCRIPT FLUSH) since we loaded the script. No append
                # of this batch ran, and each is idempotent anyway: load it and go again.
                self._sha = await self._redis.script_load(_APPEND)
                results = await self._pipeline(batch)
            results = await self._append_after_new_epochs(batch, results)
        except Exception as exc:  # a connection error: every append of the batch failed
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                created, stream_id = result
                future.set_result(Appended(StreamId.parse(stream_id), duplicate=not created))

    async def _append_after_new_epochs(
        self, batch: list[tuple[MessageEvent, asyncio.Future[Appended]]], results: list[Any]
    ) -> list[Any]:
        """Appends refused for want of an epoch: begin one in their rooms, then append
        them again (idempotent by client_id, as any retry)."""
        refused = [i for i, r in enumerate(results) if _no_epoch(r)]
        if not refused:
            return results
        await self._epochs.begin_missing(sorted({batch[i][0].room for i in refused}))
        again = await self._pipeline([batch[i] for i in refused])
        for i, result in zip(refused, again, strict=True):
            results[i] = result
        return results

    async def _pipeline(
        self, batch: list[tuple[MessageEvent, asyncio.Future[Appended]]]
    ) -> list[Any]:
        """One round trip: the room registrations, then one EVALSHA per append, in order.

        EVALSHA directly rather than redis-py's Script object, which asks SCRIPT EXISTS
        before every pipeline: a second round trip per batch.
        """
        assert self._sha is not None
        # Registered on every batch, not once per process: after Redis lost its data the
        # archivers must find the room again. One SADD per round trip costs nothing.
        rooms = sorted({event.room for event, _ in batch})
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(redis_keys.ROOMS_WITH_STREAMS, *rooms)
            for event, _ in batch:
                pipe.evalsha(
                    self._sha,
                    3,
                    redis_keys.room_stream(event.room),
                    redis_keys.sent_client_id(event.room, event.author.id, event.client_id),
                    redis_keys.room_epoch(event.room),
                    event.encode(),
                    self._ttl,
                )
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results[1:]


def _no_epoch(result: Any) -> bool:
    return isinstance(result, ResponseError) and str(result).startswith("NOEPOCH")
