"""Fetch what a build would download, before the build: Rust crates, vendored with cargo.

Builds run without network, so a Cargo project (maturin, setuptools-rust) gets its crates here,
in a preparation container that is the only step allowed to reach the network and that runs no
package code (`cargo vendor` reads manifests and lock files; it runs no build scripts). The lock
file is honoured (`--locked`); .cargo/config.toml then points cargo at the vendored copy, and the
build sets CARGO_NET_OFFLINE. Which Cargo projects are vendored: prepare/cargoprojects.py (the
ones the build backend compiles, not every Cargo.toml in the sdist).
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tomlkit

from mirror_builder.files import remove_tree
from mirror_builder.prepare.cargoprojects import SKIP_DIRS, VENDOR_DIR, manifests_to_vendor
from mirror_builder.sandbox.imagenames import ImageRef
from mirror_builder.sandbox.podman import Mount, PodmanService, RunSpec
from mirror_builder.sandbox.userns import give_back
from mirror_builder.errors import SourceError

log = logging.getLogger(__name__)

# A registry that stalls now and then (crates.io through a proxy: "Timeout was reached ...
# Less than 10 bytes/sec transferred the last 30 seconds" on one crate of maturin's 300) is not
# a broken package. cargo retries such errors itself, CARGO_NET_RETRY times (3 by default, 10
# here); a run that still fails on the network is run again, from a clean vendor folder, this
# many times in all.
VENDOR_ATTEMPTS = 3
NETWORK_TROUBLE = ("Timeout was reached", "curl failed", "failed to download", "spurious network",
                   "Couldn't resolve host", "Connection reset", "failed to get successful HTTP")


@dataclass(frozen=True)
class VendoredCrate:
    name: str
    version: str
    checksum: str | None


def lock_for(tree: Path, manifest: Path) -> Path | None:
    """The Cargo.lock cargo uses for a manifest: next to it, else its workspace's, up the tree."""
    for folder in manifest.parents:
        if (folder / "Cargo.lock").is_file():
            return folder / "Cargo.lock"
        if folder == tree or not folder.is_relative_to(tree):
            return None
    return None


def already_vendored(tree: Path) -> bool:
    """True when the sdist already carries its crates (it replaces crates-io in its own config)."""
    for config in list(tree.glob(".cargo/config*")) + list(tree.glob("*/.cargo/config*")):
        try:
            data = tomllib.loads(config.read_text())
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
            continue
        source = data.get("source")
        crates_io = source.get("crates-io") if isinstance(source, dict) else None
        if isinstance(crates_io, dict) and crates_io.get("replace-with"):
            return True
    return False


def write_cargo_config(tree: Path) -> Path:
    """Point cargo at the vendored crates, keeping anything the project's config already says."""
    config = tree / ".cargo" / "config.toml"
    config.parent.mkdir(exist_ok=True)
    document = tomlkit.parse(config.read_text()) if config.is_file() else tomlkit.document()
    source = document.setdefault("source", tomlkit.table(is_super_table=True))
    source["crates-io"] = {"replace-with": "mirror-builder-vendored"}
    # A relative directory is relative to the folder that holds .cargo/.
    source["mirror-builder-vendored"] = {"directory": VENDOR_DIR}
    net = document.setdefault("net", tomlkit.table())
    net["offline"] = True
    config.write_text(tomlkit.dumps(document))
    return config


def vendored_crates(tree: Path, manifests: Sequence[Path] | None = None) -> list[VendoredCrate]:
    """What was vendored, from the lock files (those of these manifests; None: every one in the
    tree): name, version and checksum of every registry crate."""
    if manifests is None:
        locks = {lock for lock in tree.rglob("Cargo.lock")
                 if not any(part in SKIP_DIRS for part in lock.relative_to(tree).parts)}
    else:
        locks = {lock for m in manifests if (lock := lock_for(tree, m)) is not None}
    crates = {}
    for lock in sorted(locks):
        for package in tomllib.loads(lock.read_text()).get("package", []):
            if str(package.get("source", "")).startswith("registry+"):
                crate = VendoredCrate(package["name"], package["version"], package.get("checksum"))
                crates[(crate.name, crate.version)] = crate
    return sorted(crates.values(), key=lambda c: (c.name, c.version))


def host_ca_bundle() -> Path | None:
    """The host's CA bundle: a preparation container must trust what the host trusts (a
    corporate proxy's CA, for one)."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


class RustVendorer:
    def __init__(self, podman: PodmanService, image: ImageRef) -> None:
        self.podman = podman
        self.image = image

    def vendor(self, tree: Path, label: str, log_path: Path,
               manifests: Sequence[Path] | None = None) -> list[VendoredCrate]:
        """Vendor the crates of these manifests (None: those the tree's build backend compiles)."""
        manifests = manifests_to_vendor(tree) if manifests is None else list(manifests)
        if not manifests:
            return []
        locked = all(lock_for(tree, m) is not None for m in manifests)
        relative = [str(m.relative_to(tree)) for m in manifests]
        command = ["cargo", "vendor", "--versioned-dirs", "--manifest-path", f"/src/{relative[0]}"]
        for extra in relative[1:]:
            command += ["--sync", f"/src/{extra}"]
        if locked:
            command.insert(2, "--locked")
        command.append(f"/src/{VENDOR_DIR}")
        mounts = [Mount(tree, "/src", read_only=False)]
        environment = {"CARGO_HOME": "/tmp/cargo-home", "HOME": "/tmp", "CARGO_NET_RETRY": "10"}
        ca = host_ca_bundle()
        if ca is not None:
            mounts.append(Mount(ca, "/etc/mirror-builder-host-ca.crt"))
            environment |= {"CARGO_HTTP_CAINFO": "/etc/mirror-builder-host-ca.crt",
                            "SSL_CERT_FILE": "/etc/mirror-builder-host-ca.crt"}
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
            if name in os.environ:
                environment[name] = os.environ[name]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # Root in the container is an id of its own user namespace, not the host's root, and
        # owns nothing but the mounted tree (podman gives it the tree for the run; the tree is
        # this build's, unpacked for it); every capability is still dropped.
        spec = RunSpec(image=self.image.tag, command=command, mounts=tuple(mounts),
                       environment=environment, workdir="/src", user="0:0", network=True,
                       timeout_seconds=1800)
        for attempt in range(1, VENDOR_ATTEMPTS + 1):
            with log_path.open("a") as out:
                out.write(f"[mirror-builder] {label}: vendoring crates ({' '.join(command)}), "
                          f"network allowed, no package code runs"
                          f"{f' (attempt {attempt} of {VENDOR_ATTEMPTS})' if attempt > 1 else ''}\n")
            logged = log_path.stat().st_size
            result = self.podman.run(spec, log_path)
            # The container has ended: the tree is the host's again (on an error it is not,
            # and the next preparation unpacks a fresh one).
            give_back(tree)
            if result.exit_code == 0:
                break
            with log_path.open("rb") as handle:
                handle.seek(logged)
                tail = [line for line in handle.read().decode(errors="replace").splitlines()
                        if line.strip()]
            if attempt == VENDOR_ATTEMPTS or result.timed_out or \
                    not any(trouble in line for line in tail for trouble in NETWORK_TROUBLE):
                raise SourceError(f"{label}: cargo vendor failed ({' | '.join(tail[-2:])}); "
                                  f"log: {log_path}")
            log.warning("%s: cargo vendor failed on the network (%s); trying again", label,
                        tail[-1] if tail else "no output")
            remove_tree(tree / VENDOR_DIR)
        write_cargo_config(tree)
        crates = vendored_crates(tree, manifests)
        log.info("%s: vendored %d crates", label, len(crates))
        return crates
