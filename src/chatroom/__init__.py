"""Chatroom: a self-hostable real-time chat server.

Messages go over WebSocket into a Redis Stream per room and are archived, in batches,
through a consumer group into SQL.
"""

__version__ = "0.1.0"
