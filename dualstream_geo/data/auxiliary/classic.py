"""Is a NetCDF classic file whole? Its header says how long it must be.

HDF5 (NetCDF-4) files store their end-of-file address, and the library refuses a file cut
short. The classic formats (CDF-1, CDF-2 64-bit offset, CDF-5) do not: GDAL and the
netCDF library read the missing part of a truncated file as zeros, with no error. The
header lists every variable's offset and size, so the length the file needs is known
before any value is read (the format: NetCDF Users Guide, "The NetCDF Classic Format
Specification").
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

#: Bytes per value of each nc_type (1 byte ... 11 uint64).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_DIMENSION, _VARIABLE, _ATTRIBUTE = 0x0A, 0x0B, 0x0C
_STREAMING = 0xFFFFFFFF


class _Header:
    """A reader of a classic header's big-endian fields.

    32-bit counts, or 64-bit in CDF-5.
    """

    def __init__(self, f: BinaryIO, version: int) -> None:
        self.f, self.version = f, version

    def _int(self, size: int) -> int:
        data = self.f.read(size)
        if len(data) < size:
            raise EOFError
        return int.from_bytes(data, "big")

    def count(self) -> int:
        return self._int(8 if self.version == 5 else 4)

    def int32(self) -> int:
        return self._int(4)

    def offset(self) -> int:
        return self._int(4 if self.version == 1 else 8)

    def skip(self, size: int) -> None:
        padded = size + (-size % 4)
        if len(self.f.read(padded)) < padded:
            raise EOFError

    def name(self) -> None:
        self.skip(self.count())

    def attributes(self) -> None:
        tag, count = self.int32(), self.count()
        if tag not in (0, _ATTRIBUTE):
            raise ValueError("not an attribute list")
        for _ in range(count):
            self.name()
            kind = self.int32()
            self.skip(self.count() * _TYPE_SIZES.get(kind, 1))


def classic_length(path: str) -> int | None:
    """The bytes a NetCDF classic file needs, or None where that is unknown.

    The bytes a NetCDF classic file needs (the end of its last variable's data), or None for
    a file of another format or of unknown length (streaming).

    Raises:
        ValueError: a header that is cut short or malformed.
    """
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic[:3] != b"CDF" or magic[3:] not in (b"\x01", b"\x02", b"\x05"):
            return None
        header = _Header(f, magic[3])
        try:
            records = header.count()
            if records == _STREAMING:
                return None
            tag, count = header.int32(), header.count()
            lengths = []
            for _ in range(count if tag == _DIMENSION else 0):
                header.name()
                lengths.append(header.count())
            header.attributes()
            tag, count = header.int32(), header.count()
            # (begin, bytes of data, padded size per record, is a record variable)
            extents: list[tuple[int, int, int, bool]] = []
            for _ in range(count if tag == _VARIABLE else 0):
                header.name()
                dims = [header.count() for _ in range(header.count())]
                header.attributes()
                kind = header.int32()
                size, begin = header.count(), header.offset()
                is_record = bool(dims) and lengths[dims[0]] == 0
                values = 1
                for dim in dims[1:] if is_record else dims:
                    values *= lengths[dim]
                extents.append((begin, values * _TYPE_SIZES.get(kind, 1), size, is_record))
        except EOFError:
            raise ValueError("its header is cut short") from None
    recorded = [e for e in extents if e[3]]
    # One record variable is stored unpadded; several are padded to 4 bytes each.
    step = recorded[0][1] if len(recorded) == 1 else sum(size for _, _, size, _ in recorded)
    ends = [
        begin + (max(records - 1, 0) * step if is_record else 0) + data
        for begin, data, _, is_record in extents
        if not is_record or records
    ]
    return max(ends, default=0)


def check_whole(path: str) -> str | None:
    """Why a local NetCDF classic file cannot be read right (cut short), or None."""
    if not os.path.isfile(path):
        return None
    try:
        needed = classic_length(path)
    except (ValueError, IndexError, struct.error) as error:
        return f"a NetCDF classic file whose header is unreadable ({error})"
    size = os.path.getsize(path)
    if needed is not None and size < needed:
        return f"cut short: {size:,} bytes of the {needed:,} its header describes"
    return None
