"""Drivers (asyncio, never imports locust): the stream and aiohttp transports, the sweep runner, worker processes."""
