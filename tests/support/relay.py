"""A stranger on a port: a loopback TCP relay that forwards all bytes to a real server, noting what it heard.

    with Relay(server_port) as relay:      # listens on 127.0.0.1:relay.port
        ...                                # a client talks to relay.port, the server answers through it
    relay.received                         # every byte clients sent it (what a stranger would have learnt)

It forwards both ways unchanged (Host header, challenge, everything), so it is
the strongest relay a stranger can run without the store's key: what passes
through it reaches the real server exactly as the client sent it.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class Relay:
    """A TCP proxy from 127.0.0.1:``port`` (ephemeral) to 127.0.0.1:``target``; records what clients send."""

    def __init__(self, target: int) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._received = bytearray()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True)
        self._thread.start()

    @property
    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed: the relay is done
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if record:
                    with self._lock:
                        self._received += data
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        self._listener.close()
        self._thread.join()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
