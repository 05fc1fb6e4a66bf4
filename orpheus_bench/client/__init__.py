"""Drivers: the aiohttp request driver and the sweep runner (asyncio). Never imports locust."""
