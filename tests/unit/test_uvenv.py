"""The environment uv runs in inside a container (sandbox/uvenv.py): offline, its own cache,
started from the image's seed, and never a cache something else left behind."""

import pytest

from mirror_builder.sandbox import uvenv


@pytest.fixture
def seed(tmp_path, monkeypatch):
    folder = tmp_path / "seed"
    (folder / "interpreter-v5").mkdir(parents=True)
    (folder / "interpreter-v5" / "answer.msgpack").write_bytes(b"the image's python")
    monkeypatch.setattr(uvenv, "SEED", str(folder))
    return folder


def test_the_cache_starts_as_a_copy_of_the_images_seed(seed, tmp_path):
    env = uvenv.uv_environment({"HOME": "/tmp/h"}, str(tmp_path / "cache"))

    assert (tmp_path / "cache" / "interpreter-v5" / "answer.msgpack").read_bytes() == b"the image's python"
    assert env == {"HOME": "/tmp/h", "UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "cache"),
                   "UV_PYTHON_DOWNLOADS": "never", "UV_LINK_MODE": "hardlink", "UV_NO_CONFIG": "1"}


def test_a_cache_already_there_is_refused_not_used(seed, tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "left-by-the-build").write_text("poison")

    with pytest.raises(FileExistsError):
        uvenv.uv_environment({}, str(tmp_path / "cache"))


def test_an_image_without_a_seed_gets_an_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(uvenv, "SEED", str(tmp_path / "no-seed"))

    uvenv.uv_environment({}, str(tmp_path / "cache"))

    assert list((tmp_path / "cache").iterdir()) == []
