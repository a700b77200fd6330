"""A small TCP proxy on loopback that cuts and slows connections on demand (asyncio, one thread).

Services reach the broker through it. :meth:`Proxy.reset` sends every open connection a TCP
reset; :meth:`Proxy.black_hole` keeps connections open but forwards nothing (a dead peer only
heartbeats can detect); :meth:`Proxy.latency` delays every chunk in both directions.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from typing import Any


class Proxy:
    def __init__(self, listen_port: int, upstream_port: int, host: str = "127.0.0.1"):
        self.listen_port, self.upstream_port, self.host = listen_port, upstream_port, host
        self.delay = 0.0
        self.blackholed = False
        self.connections_seen = 0
        self.resets = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-proxy", daemon=True)

    # --- control (test thread) ----------------------------------------------------------------

    def start(self) -> Proxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._call(self._close_all, True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def reset(self) -> int:
        """Send RST on every open connection; returns how many were cut."""
        return int(self._call(self._close_all, True))

    def black_hole(self, on: bool) -> None:
        self.blackholed = on

    def latency(self, seconds: float) -> None:
        self.delay = seconds

    def _call(self, function: Any, *args: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(function(*args), self._loop)
        return future.result(30)

    # --- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, self.host, self.listen_port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _close_all(self, abort: bool) -> int:
        writers, self._writers = list(self._writers), set()
        for writer in writers:
            sock = writer.get_extra_info("socket")
            if abort and sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort() if abort else writer.close()
        self.resets += len(writers) if abort else 0
        return len(writers)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_seen += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        for end in (writer, up_writer):
            self._writers.discard(end)
            end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward one direction; latency holds each chunk until its time without slowing the reading."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(queue, writer))
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk or sender.done():
                    break
                if self.blackholed:  # swallow the traffic: the peer sees silence, not a close
                    continue
                queue.put_nowait((self._loop.time() + self.delay, chunk))
        finally:
            sender.cancel()
            writer.transport.abort()

    async def _send(self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter) -> None:
        while True:
            due, chunk = await queue.get()
            wait = due - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
