"""A TCP proxy between an agent and the broker that a test can stall, as a bad network does."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class StallingProxy:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stalled_until = 0.0
        self._stop = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self, seconds: float) -> None:
        """Forward nothing for `seconds`: connections stay open but go silent."""
        self._stalled_until = time.monotonic() + seconds

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for a, b in self._pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                if self._stop.is_set():
                    return
                with contextlib.suppress(NameError, OSError):
                    client.close()
                continue
            self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._stop.is_set():
                if time.monotonic() < self._stalled_until:
                    time.sleep(0.05)
                    continue
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
