"""``taskiq redis exporter``: serve the metrics of queues over HTTP at ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, start_http_server

from taskiq_redis_lua.metrics import QueueCollector, Target


async def serve(targets: Sequence[Target], address: str, port: int) -> None:
    """Serve ``targets``' metrics on ``address:port`` until interrupted."""
    collector = QueueCollector(*targets)
    registry = CollectorRegistry()
    registry.register(collector)
    server, thread = start_http_server(port, addr=address, registry=registry)
    where = f"http://{address}:{port}/metrics"
    print(f"serving metrics of {len(targets)} queue(s) at {where}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        server.shutdown()
        thread.join(timeout=5)
        collector.close()
        for target in targets:
            await target.endpoint.close()
