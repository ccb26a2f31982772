"""What a structural check finds in a weight file, and the error it raises when the file is bad."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any

from emeritus.errors import InvalidInput

GGUF_MAGIC = b"GGUF"  # here, so that detecting a format loads neither gguf nor numpy


class FormatError(InvalidInput):
    """A weight file is malformed; str(exc) is one line naming the file and the defect,
    e.g. "model.safetensors: truncated: header says 1,234 bytes of data, file has 1,000"."""

    def __init__(self, path: str | os.PathLike[str], defect: str) -> None:
        self.path = Path(path)
        # Tensor and metadata names come from the file: keep the message on one line whatever
        # they hold.
        self.defect = " ".join(defect.splitlines())
        super().__init__(" ".join(f"{self.path.name}: {self.defect}".splitlines()))

    def __reduce__(self) -> tuple[type[FormatError], tuple[Path, str]]:
        # Rebuilt from both arguments when a worker process sends it back (pickle).
        return type(self), (self.path, self.defect)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a weight file's table, with its data's absolute byte range."""

    name: str
    dtype: str  # safetensors dtype string ("BF16") or GGML type name ("Q4_1")
    shape: tuple[int, ...]  # as the file stores it: GGUF lists the fastest-varying axis first
    offset: int  # absolute byte offset of the data in the file
    length: int  # bytes

    @property
    def end(self) -> int:
        return self.offset + self.length

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "offset": self.offset,
            "length": self.length,
        }

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> TensorInfo:
        """Read back `to_dict`'s form (or a tensor inventory entry), so a stored file can be
        re-hashed from its recorded table without trusting its possibly damaged header."""
        return cls(
            name=str(entry["name"]),
            dtype=str(entry["dtype"]),
            shape=tuple(int(n) for n in entry["shape"]),
            offset=int(entry["offset"]),
            length=int(entry["length"]),
        )


@dataclass(frozen=True)
class WeightsFile:
    """A weight file that passed its structural check."""

    path: Path
    format: str  # "gguf" | "safetensors"
    size: int  # bytes
    metadata: dict[str, Any]  # JSON-serialisable summary
    tensors: tuple[TensorInfo, ...]  # sorted by offset

    def to_dict(self) -> dict[str, Any]:
        """The summary recorded in object.json: no tensors (they have their own inventory), and
        the file's name rather than its local path."""
        return {
            "file": self.path.name,
            "format": self.format,
            "size": self.size,
            "metadata": self.metadata,
            "tensor_count": len(self.tensors),
        }


@contextmanager
def open_weights(path: Path) -> Iterator[BufferedReader]:
    """Open a weight file for reading; a file that cannot be opened is a FormatError naming it."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise FormatError(path, "no such file") from None
    except IsADirectoryError:
        raise FormatError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise FormatError(path, f"cannot be read ({exc.strerror})") from None
    with handle:
        yield handle


def file_size(handle: BufferedReader) -> int:
    return os.fstat(handle.fileno()).st_size
