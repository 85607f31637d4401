"""What the tests of engine.ingest.hub share: a RemoteFile for bytes, a meter, the fake Hub's counts."""

from __future__ import annotations

import hashlib
import logging
import socket
import time

from engine.events import Progress
from engine.ingest.hub.remote import RemoteFile
from engine.store.transfer import ProgressMeter
from tests.support.fake_hub import FakeHub

REPO = "acme/Hub-GGUF"
MIB = 1024 * 1024
# what huggingface_hub logs before each retry (http_backoff's, then http_get's): none means one attempt
RETRY_LINES = ("Retrying in", "Trying to resume download")


def remote(path: str, data: bytes) -> RemoteFile:
    return RemoteFile(path, len(data), hashlib.sha256(data).hexdigest())


def meter(events: list[Progress] | None = None, total: int = 0) -> ProgressMeter:
    return ProgressMeter((events if events is not None else []).append, "downloading", "f", total)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens once the socket is closed


def served(fake: FakeHub, path: str, settle: float = 0.3) -> int:
    """Body bytes served for ``path``, once the server has counted them (it counts after sending)."""
    last, deadline = -1, time.monotonic() + 5
    while time.monotonic() < deadline:
        now = fake.bytes_served[path]
        if now == last:
            return now
        last = now
        time.sleep(settle)
    return last


class RootRecords(logging.Handler):
    """What reaches the root logger (and so a front end's logging setup), while in a ``with`` block.

    Not caplog: pytest attaches caplog's handler to non-propagating loggers too.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> RootRecords:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger().removeHandler(self)


def one_line(message: str) -> bool:
    return message.isprintable()
