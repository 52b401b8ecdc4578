"""The document being uploaded: random-access reads from a path or a seekable file, its
whole-document checksum, and a request body that counts the bytes the connection reads."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import anycrc

from uploadsession.client.errors import ClientError


class Source:
    """Random-access reads of the document: ``os.pread`` on a path, or seek+read under a lock."""

    def __init__(self, fd: int | None, fileobj: IO[bytes] | None, size: int, name: str) -> None:
        self._fd = fd
        self._fileobj = fileobj
        self._lock = threading.Lock()
        self.size = size
        self.name = name

    @classmethod
    @contextmanager
    def open(cls, source: str | os.PathLike[str] | IO[bytes]) -> Iterator[Source]:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                yield cls(fd, None, os.fstat(fd).st_size, path.name)
            finally:
                os.close(fd)
        else:
            size = source.seek(0, os.SEEK_END)
            name = Path(str(getattr(source, "name", "") or "document")).name
            yield cls(None, source, size, name)

    def checksum(self, chunk: int = 8 * 1024 * 1024) -> str:
        """The whole file's CRC-64/NVME in the service's form, ``crc64nvme:<16 hex>``."""
        crc = anycrc.Model("CRC64-NVME")
        value: int | None = None
        for start in range(0, self.size, chunk):
            data = self.read(start, min(chunk, self.size - start))
            value = int(crc.calc(data) if value is None else crc.calc(data, value))
        return f"crc64nvme:{value or 0:016x}"

    def read(self, start: int, length: int) -> bytes:
        if self._fd is not None:
            chunks, offset, left = [], start, length
            while left:
                chunk = os.pread(self._fd, left, offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset, left = offset + len(chunk), left - len(chunk)
            data = b"".join(chunks)
        else:
            assert self._fileobj is not None
            with self._lock:
                self._fileobj.seek(start)
                data = self._fileobj.read(length)
        if len(data) != length:
            raise ClientError(
                f"the file changed while uploading: {self.name} is shorter than "
                f"the session's {self.size} bytes"
            )
        return data


class CountingBody:
    """A segment as a request body that reports bytes as the connection reads them."""

    def __init__(self, data: bytes, on_read: Callable[[int], None]) -> None:
        self._view = memoryview(data)
        self._offset = 0
        self._on_read = on_read

    def __len__(self) -> int:
        return len(self._view) - self._offset

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(len(self._view), self._offset + size)
        chunk = bytes(self._view[self._offset : end])
        self._offset = end
        if chunk:
            self._on_read(len(chunk))
        return chunk

    @property
    def consumed(self) -> int:
        return self._offset
