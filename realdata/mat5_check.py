"""A safety walk of MATLAB 5 files before scipy reads them.

scipy.io.loadmat (1.17) takes the type code of a numeric or char data element as an index
into a fixed table without checking it (_mio5_utils.pyx: read_numeric, read_char). One
damaged byte there and the process dies with a segmentation fault instead of raising. So
the file is first walked the way scipy will read it, and such a code is refused, as are
cell, struct and char arrays whose damaged dimensions claim far more elements than the
file holds (scipy allocates them all before it finds out, gigabytes from one byte). The walk
follows scipy's reads exactly (positions advance by what scipy consumes, not by declared
sizes); where scipy itself would raise, the walk just stops and leaves the error to it.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

from realdata.errors import DataFormatError, printable

_MI_DTYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 16, 17, 18})  # scipy's table
_MI_INT8, _MI_INT32, _MI_UINT32, _MI_MATRIX, _MI_COMPRESSED, _MI_UTF8 = 1, 5, 6, 14, 15, 16
_MX_CELL, _MX_STRUCT, _MX_OBJECT, _MX_CHAR, _MX_SPARSE = 1, 2, 3, 4, 5
_MX_NUMERIC = frozenset(range(6, 16))  # double ... uint64
_MX_FUNCTION, _MX_OPAQUE = 16, 17
_MAT5_MAX_INFLATED = 1 << 30


class _ScipyRaises(Exception):
    """scipy raises a Python error at this point: the walk stops, loadmat reports it."""


class _ScipyCrashes(Exception):
    """scipy would crash the process at this point, or allocate what no memory holds."""


def check_mat5_type_codes(mat_path: Path) -> None:
    try:
        data = mat_path.read_bytes()
    except OSError as exc:
        raise DataFormatError(mat_path, f"cannot be read: {printable(str(exc))}") from exc
    # scipy's own dispatch: a zero in the first 4 bytes is MAT 4, major version 2 is HDF5
    major_at = 125 if data[126:127] == b"I" else 124
    is_mat5 = len(data) >= 128 and 0 not in data[:4] and data[major_at] == 1
    if not is_mat5:
        return  # MAT 4 and HDF5 (v7.3) files take other readers
    order = "<" if data[126:128] == b"IM" else ">"
    try:
        _walk_mat5_variables(data, order)
    except _ScipyRaises:
        pass
    except _ScipyCrashes as exc:
        raise DataFormatError(mat_path, f"damaged MATLAB .mat file: {exc}") from None


def _walk_mat5_variables(data: bytes, order: str) -> None:
    pos = 128
    while pos < len(data):
        if pos + 8 > len(data):
            raise _ScipyRaises
        mdtype, size = struct.unpack_from(order + "II", data, pos)
        if size == 0:
            raise _ScipyRaises
        start = pos + 8
        if mdtype == _MI_COMPRESSED:
            inner = _Mat5Stream(_inflate(data[start:start + size]), order)
            inner_type, _ = inner.full_tag()
            if inner_type == _MI_MATRIX:
                inner.matrix_body()
        elif mdtype == _MI_MATRIX:
            _Mat5Stream(data, order, start).matrix_body()
        else:
            raise _ScipyRaises
        pos = start + size


def _inflate(payload: bytes) -> bytes:
    """What zlib can inflate of ``payload`` (scipy reads it lazily: a damaged tail is only
    reached after everything before it)."""
    inflater, out = zlib.decompressobj(), bytearray()
    try:
        for i in range(0, len(payload), 1 << 16):
            out += inflater.decompress(payload[i:i + (1 << 16)])
            if len(out) > _MAT5_MAX_INFLATED:
                raise _ScipyCrashes("a compressed variable inflates to more than 1 GiB")
    except zlib.error:
        pass
    return bytes(out)


class _Mat5Stream:
    """A cursor over MAT 5 bytes that reads as scipy's VarReader5 does."""

    def __init__(self, data: bytes, order: str, pos: int = 0):
        self.data, self.order, self.pos = data, order, pos

    def full_tag(self) -> tuple[int, int]:
        if self.pos + 8 > len(self.data):
            raise _ScipyRaises
        mdtype, size = struct.unpack_from(self.order + "II", self.data, self.pos)
        self.pos += 8
        return mdtype, size

    def element(self) -> tuple[int, bytes]:
        """(type code, payload) of a data element, small (packed into the tag) or full."""
        start = self.pos
        word, size = self.full_tag()
        if word >> 16:
            if word >> 16 > 4:
                raise _ScipyRaises
            return word & 0xFFFF, self.data[start + 4:start + 4 + (word >> 16)]
        if self.pos + size > len(self.data):
            raise _ScipyRaises
        payload = self.data[self.pos:self.pos + size]
        self.pos += size + (-size % 8)
        return word, payload

    def numeric(self, what: str) -> None:
        at = self.pos
        mdtype, _ = self.element()
        if mdtype not in _MI_DTYPES:
            raise _ScipyCrashes(f"{what} data at byte {at} has type code {mdtype}")

    def chars(self, dims: list[int]) -> None:
        at = self.pos
        mdtype, payload = self.element()
        if payload and mdtype not in _MI_DTYPES:
            raise _ScipyCrashes(f"char array data at byte {at} has type code {mdtype}")
        if not payload and _product(dims) > len(self.data):  # scipy fills it with spaces
            raise _ScipyCrashes(f"empty char array at byte {at} claims {_product(dims)} chars")

    def int32s(self, max_bytes: int) -> list[int]:
        mdtype, payload = self.element()
        if len(payload) > max_bytes or mdtype not in (_MI_INT32, _MI_UINT32):
            raise _ScipyRaises
        return list(struct.unpack(f"{self.order}{len(payload) // 4}i",
                                  payload[:len(payload) // 4 * 4]))

    def text(self) -> bytes:
        mdtype, payload = self.element()
        if mdtype not in (_MI_INT8, _MI_UTF8):
            raise _ScipyRaises
        return payload

    def sub_matrix(self) -> None:
        mdtype, size = self.full_tag()
        if mdtype != _MI_MATRIX:
            raise _ScipyRaises
        if size:
            self.matrix_body()

    def matrix_body(self) -> None:
        """An miMATRIX after its tag: flags, dims, name, then what its class holds."""
        self.full_tag()  # the array-flags element's tag, which scipy skips unread
        flags, _ = self.full_tag()
        mclass, is_complex = flags & 0xFF, flags >> 11 & 1
        if mclass == _MX_OPAQUE:
            for _ in range(3):  # name, type system, class
                self.text()
            self.sub_matrix()
            return
        dims = self.int32s(32 * 4)
        self.text()  # name
        if mclass in _MX_NUMERIC:
            for _ in range(2 if is_complex else 1):
                self.numeric("array")
        elif mclass == _MX_SPARSE:
            for _ in range(4 if is_complex else 3):
                self.numeric("sparse array")
        elif mclass == _MX_CHAR:
            self.chars(dims)
        elif mclass in (_MX_CELL, _MX_STRUCT, _MX_OBJECT, _MX_FUNCTION):
            self._children(mclass, dims)

    def _children(self, mclass: int, dims: list[int]) -> None:
        if mclass == _MX_FUNCTION:
            self.sub_matrix()
            return
        at, elements = self.pos, _product(dims)
        n_fields = 1
        if mclass in (_MX_STRUCT, _MX_OBJECT):
            if mclass == _MX_OBJECT:
                self.text()  # class name
            (name_length, *_) = self.int32s(4) or [0]
            if name_length == 0:
                raise _ScipyRaises
            n_fields = max(len(self.text()) // name_length, 0)
        # each child matrix takes 8 bytes at least; scipy allocates all elements first
        room = (len(self.data) - self.pos) // 8
        if elements * n_fields > room or elements > max(room, 1 << 16):
            raise _ScipyCrashes(f"array at byte {at} claims {elements} elements, more than "
                                "the file holds")
        for _ in range(elements * n_fields):
            self.sub_matrix()


def _product(dims: list[int]) -> int:
    if any(d < 0 for d in dims):
        raise _ScipyRaises
    return math.prod(dims)
