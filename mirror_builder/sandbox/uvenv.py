"""Runs INSIDE a container (copied in as /mb/lib/mb_uvenv.py; stdlib only, never imported on the
host): the environment uv runs in, for the driver's build environments and for smoke tests."""

import os
import shutil

# Made when the image is built (containerfiles/*/Containerfile): uv's answers about the image's
# python and about a venv at each path the driver and the smoke tests use.
SEED = "/opt/mb-uv-seed"


def uv_environment(base_env, cache_dir):
    """base_env for uv: offline, no configuration files, no downloads of Python, files
    hardlinked from cache_dir (on the same throw-away /tmp as the venvs). cache_dir must not
    exist yet, so that no cache left by a build is ever used; it starts as a copy of the
    image's seed, and uv need not ask the interpreters about themselves again."""
    if os.path.isdir(SEED):
        shutil.copytree(SEED, cache_dir, symlinks=True)
    else:
        os.makedirs(cache_dir)
    return dict(base_env, UV_OFFLINE="1", UV_CACHE_DIR=cache_dir, UV_PYTHON_DOWNLOADS="never",
                UV_LINK_MODE="hardlink", UV_NO_CONFIG="1")
