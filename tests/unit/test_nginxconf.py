"""The nginx site `mirror-builder nginx-config` writes: what it serves, and what it refuses to
write (a path nginx would read as syntax is an injection, not a path)."""

import re
from pathlib import Path

import pytest

from mirror_builder.errors import UsageError
from mirror_builder.serve.nginx import NginxSite, render_site


@pytest.fixture
def output(tmp_path) -> Path:
    (tmp_path / "out" / "simple").mkdir(parents=True)
    return tmp_path / "out"


def test_a_public_site_has_no_auth_and_a_private_one_asks_on_every_path(output, tmp_path):
    public = render_site(NginxSite(root=output, listen="8080"))
    assert "auth_basic" not in public
    tokens = tmp_path / "tokens"
    tokens.write_text("")
    private = render_site(NginxSite(root=output, listen="8080", tokens_file=tokens))
    server = private[private.index("server {"):]
    # In the server block, before any location: so it applies to every one of them.
    assert server.index("auth_basic_user_file") < server.index("location")
    assert f'auth_basic_user_file "{tokens}";' in private


def test_tls_listens_with_ssl_and_names_the_certificate(output, tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("")
    key.write_text("")
    text = render_site(NginxSite(root=output, listen="127.0.0.1:8443", certfile=cert, keyfile=key))
    assert "listen 127.0.0.1:8443 ssl;" in text
    assert f'ssl_certificate "{cert}";' in text and f'ssl_certificate_key "{key}";' in text
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text


def test_links_are_never_followed_and_only_index_paths_are_served(output):
    text = render_site(NginxSite(root=output))
    assert "disable_symlinks on;" in text
    served = re.findall(r"location ~ (\S+) \{", text)
    # Only /simple/, /files/ and their /sources/ and /from-source/ twins, the find-links page and the public
    # signing keys; no regex admits a hidden file.
    assert served and all(p.startswith(("^/(?:sources/|from-source/)?simple/",
                                        "^/(?:from-source/)?files/", "^/files/",
                                        "^/(?:sources/|from-source/)?files/", "^/sources/files/",
                                        "^/find-links\\.html$",
                                        "^/(?:signing-key|keys/[0-9a-f]+)\\.pub$"))
                          for p in served)
    assert any(re.search(p, "/find-links.html") for p in served)
    assert all(not re.search(p, "/files/six/.six-1.0.whl.tmp") for p in served)
    assert all(not re.search(p, "/records/six/") for p in served)
    assert any(re.search(p, "/simple/six/") for p in served)
    assert any(re.search(p, "/files/six/six-1.0-py3-none-any.whl.metadata") for p in served)
    assert not any(re.search(p, "/simple/Six_Thing/") for p in served)


def test_two_indexes_in_one_nginx_have_maps_of_their_own(tmp_path):
    roots = []
    for name in ("a", "b"):
        (tmp_path / name / "simple").mkdir(parents=True)
        roots.append(render_site(NginxSite(root=tmp_path / name)))
    maps = [set(re.findall(r"^map \S+ (\S+) \{", text, re.MULTILINE)) for text in roots]
    assert len(maps[0]) == 2 and not maps[0] & maps[1]


@pytest.mark.parametrize("name", ['to"kens', "to;kens", "to kens", "${secret}", "to{kens}",
                                  "to\nkens"])
def test_a_path_nginx_would_read_as_syntax_is_refused(output, tmp_path, name):
    evil = tmp_path / name
    evil.write_text("")
    with pytest.raises(UsageError, match="nginx needs an absolute path"):
        render_site(NginxSite(root=output, tokens_file=evil))


@pytest.mark.parametrize("listen", ["1;x", "0", "70000", "host:port", "127.0.0.1:8080 ssl",
                                    "[::1]:99999"])
def test_a_listen_address_must_be_an_address(output, listen):
    with pytest.raises(UsageError, match="--listen"):
        render_site(NginxSite(root=output, listen=listen))


def test_half_a_tls_setting_or_a_missing_file_is_refused(output, tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("")
    with pytest.raises(UsageError, match="both --certfile and --keyfile"):
        render_site(NginxSite(root=output, certfile=cert))
    with pytest.raises(UsageError, match="no such file"):
        render_site(NginxSite(root=output, tokens_file=tmp_path / "absent"))


def test_an_output_without_an_index_is_refused(tmp_path):
    with pytest.raises(UsageError, match="holds no index yet"):
        render_site(NginxSite(root=tmp_path))
