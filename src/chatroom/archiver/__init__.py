"""The archiver: moves messages from the room streams into SQL through one consumer group.

`service.Archiver` is the loop (used in process by `chatroom serve`), `process` the
standalone `chatroom archive` command; the pure decisions live in `batching`,
`schedules` and `failpoints`, the Redis side in `redis_streams`; outages are waited out
through `chatroom.outages`.
"""
