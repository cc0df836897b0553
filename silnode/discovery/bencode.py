"""A small bencode codec for KRPC and BEP 44 (keys and strings are bytes; ints are ints).

Ours rather than libtorrent's so the signed BEP 44 buffer, the KRPC messages and the catalog torrent are
built byte for byte the same with or without libtorrent loaded (unit tests, the CLI)."""

from __future__ import annotations

from typing import Any


class BencodeError(ValueError):
    pass


def bencode(obj: Any) -> bytes:
    out: list[bytes] = []
    _enc(obj, out)
    return b"".join(out)


def _enc(obj: Any, out: list[bytes]) -> None:
    if isinstance(obj, bool):
        raise BencodeError("bencode has no booleans")
    if isinstance(obj, int):
        out.append(b"i%de" % obj)
    elif isinstance(obj, (bytes, bytearray)):
        out.append(b"%d:" % len(obj))
        out.append(bytes(obj))
    elif isinstance(obj, str):
        _enc(obj.encode(), out)
    elif isinstance(obj, (list, tuple)):
        out.append(b"l")
        for x in obj:
            _enc(x, out)
        out.append(b"e")
    elif isinstance(obj, dict):
        out.append(b"d")
        items = sorted(((k.encode() if isinstance(k, str) else bytes(k)), v) for k, v in obj.items())
        for k, v in items:
            _enc(k, out)
            _enc(v, out)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode {type(obj).__name__}")


def bdecode(data: bytes) -> Any:
    """Decode one complete value; trailing bytes or malformed input raise :class:`BencodeError`."""
    try:
        value, end = _dec(data, 0)
    except (IndexError, ValueError) as exc:
        raise BencodeError(f"malformed bencode: {exc}") from exc
    if end != len(data):
        raise BencodeError("trailing bytes after the bencoded value")
    return value


def _dec(data: bytes, i: int) -> tuple[Any, int]:
    c = data[i : i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if c == b"l":
        i += 1
        items = []
        while data[i : i + 1] != b"e":
            v, i = _dec(data, i)
            items.append(v)
        return items, i + 1
    if c == b"d":
        i += 1
        d: dict[bytes, Any] = {}
        while data[i : i + 1] != b"e":
            k, i = _dec(data, i)
            if not isinstance(k, bytes):
                raise BencodeError("dictionary key is not a string")
            d[k], i = _dec(data, i)
        return d, i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        n = int(data[i:colon])
        start = colon + 1
        if n < 0 or start + n > len(data):
            raise BencodeError("string runs past the end")
        return data[start : start + n], start + n
    raise BencodeError(f"unexpected byte {c!r} at {i}")
