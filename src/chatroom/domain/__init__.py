"""Pure rules of the chat: stream ids, event envelopes, message and name rules. No I/O."""
