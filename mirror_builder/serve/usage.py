"""What a user needs to install from the index `serve` serves: the text of its banner, and of
its home page for a client that asks for text."""

from __future__ import annotations

from pathlib import Path

from mirror_builder.layout import VARIANTS_FOLDER, OutputLayout

# The flat page of every wheel, at the output's root (layout.py names it).
FIND_LINKS = OutputLayout(Path()).find_links.name


def usage(base_url: str, private: bool = False, variants: list[str] | tuple[str, ...] = ()) -> str:
    """What a user needs to install from the index at base_url (and its other variants')."""
    if private:
        scheme, _, host = base_url.partition("://")
        index = f"{scheme}://NAME:TOKEN@{host}/simple/"
        hostname = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
        access = f"""
This index needs a read token: NAME and TOKEN below are its name and the token itself
(`mirror-builder tokens add NAME` makes one). To keep the token out of commands, shell
history and pip.conf, leave NAME:TOKEN@ out of the URLs and put it in ~/.netrc (pip and uv
read it; the NETRC variable names another file):
  machine {hostname.strip("[]")} login NAME password TOKEN
"""
    else:
        index, access = f"{base_url}/simple/", ""
    return f"""\
A wheels-only index built from source by mirror-builder.
{access}
  pip install --index-url {index} --only-binary :all: PACKAGE
  uv pip install --index-url {index} --only-binary :all: PACKAGE
  pip install --no-index --find-links {index.removesuffix("simple/")}{FIND_LINKS} PACKAGE

pip.conf (~/.config/pip/pip.conf or /etc/pip.conf):
  [global]
  index-url = {index}
  only-binary = :all:

uv.toml (~/.config/uv/uv.toml) or [tool.uv] in pyproject.toml:
  no-build = true

  [[index]]
  url = "{index}"
  default = true

  [pip]
  index-url = "{index}"
  only-binary = [":all:"]

The hash-checked sources the wheels were built from: {base_url}/sources/simple/
""" + _variants_usage(base_url, variants)


def _variants_usage(base_url: str, variants: list[str] | tuple[str, ...]) -> str:
    if not variants:
        return ""
    lines = [f"  {variant}: {base_url}/{VARIANTS_FOLDER}/{variant}/simple/\n"
             for variant in variants]
    return ("\nOther build variants, each an index of its own (its URL in place of /simple/ "
            "above):\n" + "".join(lines))
