"""The tokens file: htpasswd's format with bcrypt hashes (what nginx's auth_basic_user_file and
crypt() read), written atomically and privately, and refused with file and line when malformed."""

import ctypes
import ctypes.util
import os
import re
import stat
from datetime import datetime, timezone

import pytest

from mirror_builder.errors import UsageError
from mirror_builder.serve.tokens import (BCRYPT_COST, TokensFileError, add_token, read_tokens,
                                   revoke_token, verify)

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def libcrypt_verifies(token: str, hashed: str) -> bool:
    """What nginx does with a line of the file: crypt(3) from the system's libcrypt (libxcrypt
    on Debian 12), then compare with the stored hash."""
    lib = ctypes.CDLL(ctypes.util.find_library("crypt"))
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib.crypt(token.encode(), hashed.encode()) == hashed.encode()


def test_a_new_token_is_random_shown_once_and_stored_as_a_bcrypt_line(tmp_path):
    path = tmp_path / "tokens"
    token = add_token(path, "ci", now=WHEN)
    other = add_token(path, "laptop", now=WHEN)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token) and token != other  # 32 random bytes
    text = path.read_text()
    assert token not in text and other not in text
    lines = text.splitlines()
    assert lines[0].startswith("# ")
    assert "# created 2026-11-30T12:00:00+00:00" in lines
    (ci_line,) = [line for line in lines if line.startswith("ci:")]
    assert re.fullmatch(rf"ci:\$2b\${BCRYPT_COST:02d}\$[./A-Za-z0-9]{{53}}", ci_line)
    assert [t.name for t in read_tokens(path).tokens] == ["ci", "laptop"]


def test_the_system_crypt_that_nginx_uses_verifies_the_stored_hashes(tmp_path):
    path = tmp_path / "tokens"
    token = add_token(path, "ci")
    (stored,) = read_tokens(path).tokens
    assert libcrypt_verifies(token, stored.hash)
    assert not libcrypt_verifies(token[:-1] + ("A" if token[-1] != "A" else "B"), stored.hash)


def test_verify_accepts_only_the_right_name_and_token(tmp_path):
    path = tmp_path / "tokens"
    token = add_token(path, "ci")
    hashes = read_tokens(path).hashes()
    assert verify(hashes, "ci", token.encode())
    assert not verify(hashes, "ci", token[:-1].encode())
    assert not verify(hashes, "other", token.encode())
    assert not verify(hashes, "ci", b"x" * 100)  # longer than bcrypt reads: never a token


def test_a_new_file_is_private_and_a_rewrite_keeps_its_mode_and_group(tmp_path):
    path = tmp_path / "tokens"
    add_token(path, "ci")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)  # what one gives nginx's group
    os.chown(path, -1, 33)
    add_token(path, "second")
    revoke_token(path, "ci")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.stat().st_gid == 33
    # No temporary files left (the lock file of add and revoke stays, empty).
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tokens.lock", "tokens"]


def test_revoking_removes_the_token_and_its_comment_and_keeps_the_rest(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# our tokens\n\n# the build farm\n")
    add_token(path, "ci", now=WHEN)
    add_token(path, "laptop", now=WHEN)
    with path.open("a") as handle:
        handle.write("# a note at the end\n")
    revoke_token(path, "ci")
    text = path.read_text()
    assert "ci:" not in text and text.count("# created") == 1
    assert "# our tokens" in text and "# the build farm" in text and "# a note at the end" in text
    assert [t.name for t in read_tokens(path).tokens] == ["laptop"]
    assert read_tokens(path).render() == text  # reading and writing again changes nothing


def test_a_name_twice_an_unknown_name_or_a_bad_name_is_refused(tmp_path):
    path = tmp_path / "tokens"
    add_token(path, "ci")
    before = path.read_bytes()
    with pytest.raises(UsageError, match="already has a token named 'ci'"):
        add_token(path, "ci")
    with pytest.raises(UsageError, match="no token named 'nobody'.*it has: ci"):
        revoke_token(path, "nobody")
    for name in ("", "a:b", "a b", "#x", "-x", "x/y", "é", "a@b", "x" * 65):
        with pytest.raises(UsageError, match="not a token name"):
            add_token(path, name)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content, line, problem", [
    ("ci:$2b$05$" + "a" * 53 + "\nnocolon\n", 2, "expected NAME:HASH"),
    ("ci:plaintext\n", 1, "expected NAME:HASH"),
    ("ci:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", 1, "expected NAME:HASH"),
    ("# c\n\n a:$2b$05$" + "a" * 53 + "\n", 3, "expected NAME:HASH"),
    ("ci:$2b$05$" + "a" * 53 + "\n# x\nci:$2b$05$" + "b" * 53 + "\n", 3, "'ci' appears twice"),
])
def test_a_malformed_file_is_refused_naming_file_and_line(tmp_path, content, line, problem):
    path = tmp_path / "tokens"
    path.write_text(content)
    with pytest.raises(TokensFileError, match=re.escape(f"{path}:{line}: ") + re.escape(problem)):
        read_tokens(path)


def test_a_file_that_is_not_utf8_or_missing_is_refused(tmp_path):
    path = tmp_path / "tokens"
    with pytest.raises(TokensFileError, match="no such tokens file"):
        read_tokens(path)
    path.write_bytes(b"# fine\n# \xff\n")
    with pytest.raises(TokensFileError, match=re.escape(f"{path}:2: not UTF-8")):
        read_tokens(path)
    assert issubclass(TokensFileError, UsageError)


def test_admins_adding_tokens_at_once_lose_none(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    path = tmp_path / "tokens"
    names = [f"user{i}" for i in range(8)]
    with ProcessPoolExecutor(max_workers=4) as pool:
        list(pool.map(add_token, [path] * len(names), names))
    assert sorted(t.name for t in read_tokens(path).tokens) == names
