"""The archiver: moves messages from the room streams into SQL through one consumer group.

`service.Archiver` runs it (in process inside `chatroom serve`, or as `chatroom archive`
through `process`): its three schedules' loops drive `reading` (own pending, stale and
new entries), `pipeline` (one transaction per batch, then XACK) and `upkeep` (trims,
progress, heartbeat, gauges); `retries` waits out Redis and SQL outages. Pure decisions
live in `batching`, `schedules` and `failpoints`; the Redis commands in `redis_streams`.
"""
