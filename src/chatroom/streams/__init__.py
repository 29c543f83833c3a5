"""The Redis side: connections, the stream writer, stream reads, persistence checks."""
