"""The realtime hub: connections with bounded queues, room subscriptions, the cross-node
fan-out of the room streams, presence and the per-user limits."""
