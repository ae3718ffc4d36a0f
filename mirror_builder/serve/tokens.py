"""The read tokens of a private index: a file of bcrypt hashes that serve and nginx both read.

The format is htpasswd's, so nginx's `auth_basic_user_file` takes the very same file:

    # mirror-builder read tokens: NAME:HASH, one a line (htpasswd format, bcrypt $2b$)

    # created 2026-11-30T12:00:00+00:00
    ci:$2b$05$...

A line starting with "#" is a comment; a comment block directly above a token belongs to it (it
goes when the token is revoked); other comments are kept, at the top when the file is rewritten.
The token itself is never stored: it is shown once, when made.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import bcrypt

from mirror_builder.errors import MirrorBuilderError, UsageError

# The slowness of a password hash protects passwords people can guess; a token of 256 random
# bits cannot be guessed at any speed, so the hash only has to be one-way. nginx runs crypt()
# on every request it admits (it has no cache), so a high cost would be paid per request.
BCRYPT_COST = 5
# A name is the user name of HTTP Basic auth and of a URL's user:password@ part: no ":", "@",
# "/" or space, and never a "#" that would make its line a comment.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HASH = re.compile(r"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}")
HEADER = "# mirror-builder read tokens: NAME:HASH, one a line (htpasswd format, bcrypt $2b$)"
# bcrypt reads at most 72 bytes; a longer password is never one of our tokens.
_BCRYPT_MAX = 72
# Checked when a name is unknown, so a wrong name costs as long as a wrong token.
_DUMMY_HASH = bcrypt.hashpw(b"no such token", bcrypt.gensalt(BCRYPT_COST))


class TokensFileError(UsageError):
    """The tokens file is missing, unreadable or malformed; the message names file and line."""


@dataclass(frozen=True)
class Token:
    name: str
    hash: str
    comments: tuple[str, ...] = ()

    @property
    def created(self) -> str:
        """When it was made, from its "# created ..." comment; "" if it has none."""
        for line in self.comments:
            if line.startswith("# created "):
                return line.removeprefix("# created ").strip()
        return ""


@dataclass(frozen=True)
class TokensFile:
    """A tokens file as read: its tokens in order, and the comment lines that belong to none."""

    path: Path
    tokens: tuple[Token, ...] = ()
    # Lines kept as they are (the header, comments followed by a blank line, blank lines).
    loose: tuple[str, ...] = field(default=(HEADER, ""))

    def find(self, name: str) -> Token | None:
        return next((t for t in self.tokens if t.name == name), None)

    def render(self) -> str:
        lines = list(self.loose)
        for token in self.tokens:
            if lines and lines[-1] != "":
                lines.append("")
            lines += [*token.comments, f"{token.name}:{token.hash}"]
        return "\n".join(lines).strip("\n") + "\n"

    def hashes(self) -> dict[str, bytes]:
        return {t.name: t.hash.encode("ascii") for t in self.tokens}


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(f"{name!r} is not a token name: use 1 to 64 letters, digits, '.', '_' "
                         f"or '-', starting with a letter or digit")
    return name


def read_tokens(path: Path, *, missing_ok: bool = False) -> TokensFile:
    """Parse a tokens file; any line that is not a comment, blank or NAME:HASH is an error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return TokensFile(path)
        raise TokensFileError(f"{path}: no such tokens file (make one with "
                              f"`mirror-builder tokens add NAME --file {path}`)") from None
    except OSError as exc:
        raise TokensFileError(f"{path}: cannot read the tokens file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise TokensFileError(f"{path}:{line}: not UTF-8 text") from None
    tokens: list[Token] = []
    loose: list[str] = []
    pending: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if line.startswith("#"):
            pending.append(line)
            continue
        if not line.strip():
            loose += pending
            pending = []
            if loose and loose[-1] != "":
                loose.append("")
            continue
        name, colon, hashed = line.partition(":")
        if not colon or not _NAME.fullmatch(name) or not _HASH.fullmatch(hashed):
            raise TokensFileError(
                f"{path}:{number}: expected NAME:HASH (a bcrypt $2b$ hash, as `mirror-builder "
                f"tokens add` writes), a comment starting with '#' or a blank line")
        if name in seen:
            raise TokensFileError(f"{path}:{number}: {name!r} appears twice (first on line "
                                  f"{seen[name]})")
        seen[name] = number
        tokens.append(Token(name, hashed, tuple(pending)))
        pending = []
    while loose and loose[-1] == "":
        loose.pop()
    return TokensFile(path, tuple(tokens), tuple(loose + pending) or (HEADER,))


def write_tokens(tokens: TokensFile) -> None:
    """Write the file atomically (a reader sees the old or the new file, never half). A new file
    is made readable by its owner only; an existing file keeps its mode and group, so one
    `chgrp www-data FILE && chmod 640 FILE` for nginx survives later adds and revokes."""
    path = tokens.path
    try:
        old = path.stat()
        mode, gid = old.st_mode & 0o7777, old.st_gid
    except FileNotFoundError:
        mode, gid = 0o600, -1
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent}: no such folder for the tokens file")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise MirrorBuilderError(f"cannot write the tokens file in {path.parent}: "
                                 f"{exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(tokens.render())
            handle.flush()
            os.fsync(handle.fileno())
        os.chown(tmp, -1, gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_token(path: Path, name: str, now: datetime | None = None) -> str:
    """Make a token for name, store its hash, and return the token (the only time it exists)."""
    check_name(name)
    with _changing(path):
        current = read_tokens(path, missing_ok=True)
        if current.find(name):
            raise UsageError(f"{path} already has a token named {name!r}; revoke it first or "
                             f"choose another name")
        token = secrets.token_urlsafe(32)
        hashed = bcrypt.hashpw(token.encode("ascii"), bcrypt.gensalt(BCRYPT_COST)).decode("ascii")
        created = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
        write_tokens(TokensFile(path, current.tokens + (Token(name, hashed,
                                                              (f"# created {created}",)),),
                                current.loose))
    return token


def revoke_token(path: Path, name: str) -> None:
    with _changing(path):
        current = read_tokens(path)
        if current.find(name) is None:
            known = ", ".join(t.name for t in current.tokens) or "none"
            raise UsageError(f"{path} has no token named {name!r} (it has: {known})")
        write_tokens(TokensFile(path, tuple(t for t in current.tokens if t.name != name),
                                current.loose))


@contextmanager
def _changing(path: Path) -> Iterator[None]:
    """One read-modify-write of the file at a time: two admins adding tokens at once must not
    lose one. The lock is a hidden file beside it (the tokens file itself is replaced by rename,
    so a lock on it would be on a file that is no longer there)."""
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent}: no such folder for the tokens file")
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def verify(hashes: dict[str, bytes], name: str, secret: bytes) -> bool:
    """Whether secret is the token called name. Takes as long for an unknown name."""
    hashed = hashes.get(name)
    if len(secret) > _BCRYPT_MAX:
        return False
    matched = bcrypt.checkpw(secret, hashed if hashed is not None else _DUMMY_HASH)
    return matched and hashed is not None
