"""Model and file names: a strict character set, so a name can never address anything outside the store.

A model name is ``org/model``. Each part: 1-96 characters from ``A-Z a-z 0-9 . _ -``, starting with a letter or
digit, and never ``.`` / ``..``-like. That rules out path separators, NUL, ``..``, absolute paths and hidden
files by construction; the store still checks every resolved path on top (defence in depth).
"""

from __future__ import annotations

import re

from silnode.errors import InvalidName

_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
NAME_RE = re.compile(rf"^({_PART})/({_PART})$")
FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.gguf$")


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid ``org/model`` name, else raise :class:`InvalidName`."""
    if not isinstance(name, str):
        raise InvalidName(f"model name must be a string, got {type(name).__name__}")
    shown = name if len(name) <= 80 and name.isprintable() else repr(name[:80])
    m = NAME_RE.fullmatch(name)
    if not m:
        if "/" not in name:
            raise InvalidName(f"invalid model name {shown!s}: expected org/model")
        raise InvalidName(
            f"invalid model name {shown!s}: each part of org/model needs 1-96 of A-Z a-z 0-9 . _ - "
            "and must start with a letter or digit"
        )
    for part in m.groups():
        if ".." in part or part.endswith("."):
            raise InvalidName(f"invalid model name {shown!s}: '..' and a trailing '.' are not allowed")
    return name


def validate_file_name(name: object) -> str:
    """A file inside a model directory: one path component ending in .gguf."""
    if not isinstance(name, str) or not FILE_RE.fullmatch(name) or ".." in name:
        shown = repr(name)[:80]
        raise InvalidName(
            f"invalid model file name {shown}: expected a plain name like model-q4_k_m.gguf",
            hint="file names inside a model: letters, digits, '.', '_', '-', ending in .gguf",
        )
    return name


def safe_file_name(name: str) -> str:
    """Turn a source file name into a valid store file name: odd characters become '-', '.gguf' is added."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
    base = re.sub(r"\.{2,}", ".", base)
    if not base.lower().endswith(".gguf"):
        base += ".gguf"
    elif not base.endswith(".gguf"):
        base = base[:-5] + ".gguf"
    if not base[0].isalnum():
        base = "m" + base
    return validate_file_name(base[-200:] if len(base) > 200 else base)


def split_name(name: str) -> tuple[str, str]:
    org, model = validate_name(name).split("/")
    return org, model


def is_valid_name(name: object) -> bool:
    try:
        validate_name(name)
    except InvalidName:
        return False
    return True
