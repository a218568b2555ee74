"""AGI: the pure protocol layer, the channel built on it, and its two transports
(FastAGI over TCP, classic AGI over stdin/stdout)."""
