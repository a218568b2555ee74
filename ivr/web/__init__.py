"""The HTTP API and the web console (aiohttp), served by `ivr serve`."""
