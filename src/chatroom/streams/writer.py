"""The stream writer: append an event to its room's stream and return the stream id.

An append is one Lua script, so it is idempotent by (room, sender, client_id): the
script returns the id an earlier append of the same client_id got instead of adding
again. That makes a resend after a dropped connection safe, and a retried batch safe too.

Concurrent appends are queued and sent together in one pipeline per round trip: under
load that is many appends per network write instead of one. Batches go out one after
the other, so appends reach Redis in the order they were queued.

Durability (PRODUCT.md invariant 11, streams/persistence.py) is Redis's: under
`ack_durability = fsync` it runs `appendfsync always` and fsyncs a batch before it
replies, so an append's reply is its fsync.

A batch that fails (a lost connection, a timeout) may or may not
have been stored. The writer retries the whole batch (idempotent) for up to `RETRY_S`,
and sends no later batch meanwhile (once a batch failed for good, the next ones get one
attempt each until one succeeds: a long outage does not cost `RETRY_S` per batch). If
the batch still fails, its appends end in `OutcomeUnknown` (resend with the same
client_id), or in a plain connection error when no attempt ever reached Redis (not
taken). Appends carry an `order` key (one connection):
while an append of that key has an unknown outcome, its later appends are not sent
(`HeldBack`) until the unknown one is appended again or the key is forgotten, so that a
resend never lands after a message that was sent after it.

The script refuses to add to a room that has no epoch record (a new room, or Redis lost
the room's keys): the writer begins one (streams/epochs.py), which raises the stream's
last id above every archived message, and appends again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatroom import redis_keys
from chatroom.domain.events import StreamEvent
from chatroom.domain.stream_ids import StreamId
from chatroom.streams.epochs import StreamEpochs

# One call appends a batch's events of one room, in order (every key of a call is in the
# room's slot: a cluster takes it). KEYS: the room's stream, its epoch, then one
# sent-client-id key per event. ARGV: the ttl in seconds, then the events' envelopes in
# the order of their keys. The entry's one field is 'event' (domain.events.EVENT_FIELD).
# Returns two items per event, in order: 1 and the new id; 0 and the id an earlier append
# of the same client_id got (a resend: nothing added); or -1 and why nothing was added
# (NOEPOCH when the room has no epoch; an error of Redis, e.g. OOM or WRONGTYPE, as its
# text). Each call that can fail runs under pcall: one refused append is that append's
# error, and never hides what the others of the call did.
_APPEND_ROOM = """
local out = {}
local epoch = nil
for i = 3, #KEYS do
  local id = redis.pcall('GET', KEYS[i])
  local created = 0
  if id and type(id) ~= 'table' then
    redis.pcall('EXPIRE', KEYS[i], ARGV[1])
  elseif not id then
    if epoch == nil then
      epoch = redis.call('EXISTS', KEYS[2]) == 1
    end
    if epoch then
      id = redis.pcall('XADD', KEYS[1], '*', 'event', ARGV[i - 1])
      created = 1
    else
      id = {err = 'NOEPOCH the room has no stream epoch'}
    end
  end
  if type(id) == 'table' then
    out[#out + 1] = -1
    out[#out + 1] = id.err
  else
    if created == 1 then
      redis.pcall('SET', KEYS[i], id, 'EX', ARGV[1])
    end
    out[#out + 1] = created
    out[#out + 1] = id
  end
end
return out
"""


# How long a failed batch is retried before its appends are told their outcome is unknown.
RETRY_S = 5.0
_RETRY_FIRST_S, _RETRY_MAX_S = 0.05, 1.0
# Order keys remembered with unknown appends; past this the oldest are dropped (a socket
# that closed while its batch was failing is forgotten before its unknown one lands).
UNRESOLVED_KEYS_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Appended:
    id: StreamId
    duplicate: bool  # a resend: the id is the first append's, nothing new was stored


class OutcomeUnknown(RedisError):
    """The append may or may not be stored: resend it with the same client_id."""


class HeldBack(RedisError):
    """Not sent: an earlier append of the same order key has an unknown outcome."""


# A queued append: its event, its future, and its order key (or None).
_Item = tuple[StreamEvent, "asyncio.Future[Appended]", Hashable | None]


class StreamWriter:
    def __init__(
        self,
        redis: Redis,
        *,
        client_id_ttl_s: int,
        max_batch: int = 512,
        epochs: StreamEpochs | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        self._redis = redis
        # Without SQL's newest ids (tests of Redis alone) an epoch's floor is the stream's.
        self._epochs = epochs or StreamEpochs(redis)
        self._ttl = client_id_ttl_s
        self._max_batch = max_batch
        self._retry_s = retry_s
        # A batch failed for good and none has succeeded since: Redis is down, and the
        # batches queued behind get one attempt each, not a retry budget each.
        self._down = False
        self._sha: str | None = None  # the append script, once loaded
        self._queue: list[_Item] = []
        self._in_flight: list[_Item] = []
        # Per order key, the appends (room, sender, client_id) whose outcome is unknown.
        self._unresolved: dict[Hashable, set[tuple[str, int, str]]] = {}
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None

    async def append(self, event: StreamEvent, *, order: Hashable | None = None) -> Appended:
        """Append and wait for the stream id.

        Raises `OutcomeUnknown` (maybe stored: resend), `HeldBack` (not sent: resend the
        unknown one of `order` first), or a redis error (not stored).
        """
        return await self.submit(event, order=order)

    def submit(
        self, event: StreamEvent, *, order: Hashable | None = None
    ) -> asyncio.Future[Appended]:
        """Queue the append now and return its future (what `append` awaits): appends
        are sent in the order they were submitted. The hub submits without a task of its
        own per send (hub/session.py), and reads the outcome when the future is done."""
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future, order))
        self._wakeup.set()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_batches(), name="stream-writer")
        return future

    def forget(self, order: Hashable) -> None:
        """The order key's connection is gone: hold nothing back for it any more."""
        self._unresolved.pop(order, None)

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for _, future, _ in self._in_flight:
            if not future.done():
                future.set_exception(OutcomeUnknown("the stream writer closed while sending"))
        for _, future, _ in self._queue:
            if not future.done():
                future.set_exception(RedisConnectionError("the stream writer is closed"))
        self._queue.clear()

    async def _send_batches(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                taken = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                batch = [item for item in taken if not self._held_back(item)]
                if batch:
                    self._in_flight = batch
                    await self._send(batch)
                    self._in_flight = []

    def _held_back(self, item: _Item) -> bool:
        """Fail an append whose order key has an unknown one before it (not that one)."""
        event, future, order = item
        unknown = self._unresolved.get(order) if order is not None else None
        if not unknown or _key(event) in unknown:
            return False
        if not future.done():
            future.set_exception(
                HeldBack(
                    "not sent: an earlier message of this connection has an unknown "
                    "outcome; resend that one first"
                )
            )
        return True

    async def _send(self, batch: list[_Item]) -> None:
        deadline: float | None = None  # from the first failure on
        delay = _RETRY_FIRST_S
        reached = False  # whether any attempt may have reached Redis
        while True:
            try:
                results = await self._attempt(batch)
                self._down = False
                break
            except Exception as exc:
                reached = reached or not _never_sent(exc)
                if deadline is None:
                    deadline = time.monotonic() + (0.0 if self._down else self._retry_s)
                if time.monotonic() + delay > deadline:
                    self._down = True
                    self._fail(batch, exc, reached=reached)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
        for (event, future, order), result in zip(batch, results, strict=True):
            self._resolved(order, event)
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)  # refused by Redis (full, loading): not stored
            else:
                created, stream_id = result
                future.set_result(Appended(StreamId.parse(stream_id), duplicate=not created))

    def _fail(self, batch: list[_Item], exc: Exception, *, reached: bool) -> None:
        """The batch failed for good: unknown if any attempt may have reached Redis."""
        for event, future, order in batch:
            if reached:
                if order is not None:
                    self._unresolved.setdefault(order, set()).add(_key(event))
                    while len(self._unresolved) > UNRESOLVED_KEYS_MAX:
                        del self._unresolved[next(iter(self._unresolved))]
                error: Exception = OutcomeUnknown(f"the outcome is unknown: {exc}")
            else:
                self._resolved(order, event)
                error = exc
            if not future.done():
                future.set_exception(error)

    def _resolved(self, order: Hashable | None, event: StreamEvent) -> None:
        if order is None:
            return
        unknown = self._unresolved.get(order)
        if unknown is not None:
            unknown.discard(_key(event))
            if not unknown:
                del self._unresolved[order]

    async def _attempt(self, batch: list[_Item]) -> list[Any]:
        """One try at the whole batch; raises when its outcome is not known."""
        if self._sha is None:
            self._sha = await self._redis.script_load(_APPEND_ROOM)
        results = await self._pipeline(batch)
        if any(isinstance(r, NoScriptError) for r in results):
            # Redis restarted (or SCRIPT FLUSH) since we loaded the script. No append
            # of this batch ran, and each is idempotent anyway: load it and go again.
            self._sha = await self._redis.script_load(_APPEND_ROOM)
            results = await self._pipeline(batch)
        return await self._append_after_new_epochs(batch, results)

    async def _append_after_new_epochs(self, batch: list[_Item], results: list[Any]) -> list[Any]:
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

    async def _pipeline(self, batch: list[_Item]) -> list[Any]:
        """One round trip: the room registrations, then one EVALSHA per room of the batch
        with that room's appends in order; each append's result, in batch order.

        One script call per room rather than per append: redis-py packs and parses a
        command in Python, and Redis runs a script call's set-up once, so the node's and
        Redis's CPU per message fall with the batch (docs/performance.md, "Ingest at
        20,000/s"). EVALSHA directly rather than redis-py's Script object, which asks
        SCRIPT EXISTS before every pipeline: a second round trip per batch.
        """
        assert self._sha is not None
        by_room: dict[str, list[int]] = {}
        for i, (event, _, _) in enumerate(batch):
            by_room.setdefault(event.room, []).append(i)
        # Registered on every batch, not once per process: after Redis lost its data the
        # archivers must find the room again. One SADD per round trip costs nothing.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(redis_keys.ROOMS_WITH_STREAMS, *by_room)
            for room, indexes in by_room.items():
                keys = [redis_keys.room_stream(room), redis_keys.room_epoch(room)]
                args: list[Any] = [self._ttl]
                for i in indexes:
                    event = batch[i][0]
                    keys.append(redis_keys.sent_client_id(room, event.author.id, event.client_id))
                    args.append(event.encode())
                pipe.evalsha(self._sha, len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        results: list[Any] = [None] * len(batch)
        for indexes, reply in zip(by_room.values(), replies[1:], strict=True):
            if isinstance(reply, Exception):  # the whole call failed: every append of it
                for i in indexes:
                    results[i] = reply
                continue
            for n, i in enumerate(indexes):
                code, value = reply[2 * n], reply[2 * n + 1]
                if code < 0:
                    # Redis's error text as redis-py would raise it for a plain command
                    # (OOM -> OutOfMemoryError, ...): callers tell outcomes by its class.
                    text = value.decode() if isinstance(value, bytes) else str(value)
                    results[i] = BaseParser.parse_error(text)  # type: ignore[no-untyped-call]
                else:
                    results[i] = (code, value)
        return results


def _key(event: StreamEvent) -> tuple[str, int, str]:
    return (event.room, event.author.id, event.client_id)


def _no_epoch(result: Any) -> bool:
    return isinstance(result, ResponseError) and str(result).startswith("NOEPOCH")


def _never_sent(exc: BaseException) -> bool:
    """Whether a failed attempt certainly sent nothing: it failed getting a connection
    (on a client without redis-py's own retries, only that connects)."""
    text = str(exc)
    if isinstance(exc, RedisTimeoutError):
        return text.startswith("Timeout connecting")
    if isinstance(exc, RedisConnectionError):
        return "connecting to" in text or text.startswith("No connection available")
    return isinstance(exc, OSError) and "connect" in text.lower()
