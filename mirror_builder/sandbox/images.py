"""Each target's build image: a base root filesystem from Debian's packages, the target's
Containerfile with uv on it, per-package layers of extra Debian packages, and the marker values
of the image's python3. Made once and reused until what they are made from changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from mirror_builder.config.settings import TargetSettings
from mirror_builder.errors import ContainerError
from mirror_builder.files import atomic_write_text, sha256_of
from mirror_builder.resolve.target import PROBE_SCRIPT
from mirror_builder.sandbox import imagenames
from mirror_builder.sandbox.debcontents import DEBIAN_MIRROR
from mirror_builder.sandbox.imagenames import ImageRef
from mirror_builder.sandbox.podman import PodmanService, RunSpec, podman_environment

log = logging.getLogger(__name__)

BASE_PACKAGES = "python3,python3-venv,ca-certificates"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
QEMU_NAMES = {"arm64": "aarch64", "armhf": "arm", "ppc64el": "ppc64le", "s390x": "s390x",
              "riscv64": "riscv64", "amd64": "x86_64", "i386": "i386"}


class ImageManager:
    """Builds each target's image once and reuses it until its inputs change."""

    def __init__(self, podman: PodmanService, cache_dir: Path) -> None:
        self.podman = podman
        self.cache_dir = imagenames.images_dir(cache_dir)

    def base_tag(self, target: TargetSettings) -> str:
        return imagenames.base_tag(target)

    def ensure_base(self, target: TargetSettings) -> str:
        """The base root filesystem, made from Debian's packages (no registry is reachable)."""
        tag = self.base_tag(target)
        check_emulation(target)
        if self.podman.image_id(tag):
            return tag
        if shutil.which("mmdebstrap") is None:
            raise ContainerError("mmdebstrap is not installed; run the README's set-up command")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("making base image %s from Debian's packages (about a minute)", tag)
        with tempfile.TemporaryDirectory(dir=self.cache_dir) as tmp:
            tarball = Path(tmp) / "rootfs.tar"
            suite = target.distribution
            sources = [f"deb {DEBIAN_MIRROR} {suite} main", f"deb {DEBIAN_MIRROR} {suite}-updates main",
                       f"deb {DEBIAN_SECURITY} {suite}-security main"]
            self._check_call(["mmdebstrap", "--variant=minbase", f"--arch={target.arch}",
                              f"--include={BASE_PACKAGES}", suite, str(tarball), *sources], tag)
            self._check_call(["podman", "import", "--arch", target.arch, str(tarball), tag], tag)
        return tag

    def _check_call(self, command: list[str], tag: str) -> None:
        log_path = self.cache_dir / "base-image.log"
        with log_path.open("a") as out:
            proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                  env=podman_environment())
        if proc.returncode != 0:
            raise ContainerError(f"making {tag} failed at `{' '.join(command[:2])}`; log: {log_path}")

    def ensure(self, target: TargetSettings) -> ImageRef:
        """The target's build image, rebuilt only when its Containerfile, uv or base changes."""
        containerfile = target.containerfile
        content = imagenames.containerfile_bytes(target)
        base_tag = self.ensure_base(target)
        base_id = self.podman.image_id(base_tag) or ""
        uv_binary = self._uv_for(target.arch)
        containerfile_sha = hashlib.sha256(content).hexdigest()
        tag = imagenames.image_tag(target, content, self._digest(uv_binary), base_id)
        image_id = self.podman.image_id(tag)
        if image_id is None:
            log.info("building image %s for target %s (a few minutes, once)", tag, target.name)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.cache_dir) as tmp:
                context = Path(tmp)
                shutil.copy2(containerfile, context / "Containerfile")
                shutil.copy2(uv_binary, context / "uv")
                image_id = self.podman.build_image(
                    context, context / "Containerfile", tag, {"BASE_IMAGE": base_tag},
                    self.cache_dir / f"{target.name}-build.log", arch=target.arch)
        # So that plan finds this image's markers without podman (see imagenames).
        imagenames.record_image(self.cache_dir, target, content, tag, image_id)
        return ImageRef(tag=tag, id=image_id, base=f"{base_tag}@{base_id}",
                        containerfile=str(containerfile), containerfile_sha256=containerfile_sha,
                        target=target.name, system_packages=self._system_packages(tag, image_id))

    def _digest(self, path: Path) -> str:
        """sha256 of a file, remembered by its path, size and modification time: uv's binary is
        40 MB, and hashing it on every run took 50 ms of each one's start."""
        stat = path.stat()
        key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
        known_file = self.cache_dir / "digests.json"
        try:
            known = json.loads(known_file.read_text())
        except (OSError, ValueError):
            known = {}
        known = known if isinstance(known, dict) else {}
        if not isinstance(known.get(key), str):
            known[key] = sha256_of(path)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(known_file, json.dumps(known))
        return known[key]

    def _system_packages(self, tag: str, image_id: str) -> tuple[str, ...]:
        """dpkg's list of the image's packages with versions, read once per image."""
        cached = imagenames.packages_file(self.cache_dir, image_id)
        if not cached.is_file():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                log_path = Path(tmp) / "dpkg.log"
                result = self.podman.run(RunSpec(
                    image=tag, command=["dpkg-query", "-W", "-f", "${Package}=${Version}\\n"],
                    timeout_seconds=120), log_path)
                if result.exit_code != 0:
                    raise ContainerError(f"image {tag}: cannot list its packages: "
                                         f"{log_path.read_text()[-300:]}")
                cached.write_text(log_path.read_text())
        return tuple(line for line in cached.read_text().splitlines() if "=" in line)

    def with_system_packages(self, image: ImageRef, packages: tuple[str, ...]) -> ImageRef:
        """A layer on the target image with a package's extra Debian packages. Named by its
        content, so packages that need the same set share one image, and no package's needs
        bloat every build."""
        if not packages:
            return image
        wanted = sorted(set(packages))
        key = hashlib.sha256("\n".join([image.id, *wanted]).encode()).hexdigest()[:16]
        tag = f"{image.tag.rsplit(':', 1)[0]}-layer:{key}"
        image_id = self.podman.image_id(tag)
        if image_id is None:
            log.info("adding %s to %s (once for this set of packages)", " ".join(wanted), image.tag)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.cache_dir) as tmp:
                context = Path(tmp)
                (context / "Containerfile").write_text(
                    f"FROM {image.tag}\nUSER root\n"
                    "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                    f"--no-install-recommends {' '.join(wanted)} && rm -rf /var/lib/apt/lists/*\n")
                image_id = self.podman.build_image(context, context / "Containerfile", tag, {},
                                                   self.cache_dir / f"layer-{key}.log",
                                                   arch=self._arch_of(image))
        return ImageRef(tag=tag, id=image_id, base=f"{image.tag}@{image.id}",
                        containerfile=image.containerfile,
                        containerfile_sha256=image.containerfile_sha256, target=image.target,
                        system_packages=self._system_packages(tag, image_id),
                        layer_packages=tuple(wanted))

    def _uv_for(self, arch: str) -> Path:
        """The uv binary for the image: ours for the host's architecture; for another, the same
        uv version's wheel for that architecture from PyPI (its binary is what the wheel holds)."""
        from mirror_builder.config.settings import host_debian_arch

        native = _uv_binary()
        if arch == host_debian_arch():
            return native
        version = subprocess.run([str(native), "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
        folder = self.cache_dir / f"uv-{version}-{arch}"
        binary = folder / "uv"
        if binary.is_file():
            return binary
        platform = {"arm64": "manylinux2014_aarch64", "amd64": "manylinux2014_x86_64",
                    "ppc64el": "manylinux2014_ppc64le", "s390x": "manylinux2014_s390x",
                    "armhf": "manylinux2014_armv7l"}.get(arch)
        if platform is None:
            raise ContainerError(f"no uv binary is published for {arch}")
        download = folder / "download"
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                               "--only-binary", ":all:", "--platform", platform, "-d", str(download),
                               f"uv=={version}"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ContainerError(f"cannot fetch uv {version} for {arch}: {proc.stderr.strip()[-300:]}")
        (wheel,) = download.glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            (member,) = [n for n in zf.namelist() if n.endswith("/scripts/uv")]
            binary.write_bytes(zf.read(member))
        binary.chmod(0o755)
        return binary

    def _arch_of(self, image: ImageRef) -> str | None:
        try:
            return self.podman.client.images.get(image.tag).attrs.get("Architecture")
        except Exception:  # only a hint for podman; the build says so if it is wrong
            return None

    def marker_environment(self, image: ImageRef) -> dict[str, str]:
        """PEP 508 marker values of the image's python3, measured once per image."""
        cached = imagenames.markers_file(self.cache_dir, image.id)
        if cached.is_file():
            return json.loads(cached.read_text())
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            log_path = Path(tmp) / "probe.log"
            result = self.podman.run(RunSpec(image=image.tag, command=["python3", "-c", PROBE_SCRIPT],
                                             timeout_seconds=120), log_path)
            output = log_path.read_text()
        if result.exit_code != 0:
            raise ContainerError(f"image {image.tag}: python3 does not run: {output.strip()[-500:]}")
        markers = json.loads(output.strip().splitlines()[-1])
        cached.write_text(json.dumps(markers, indent=2))
        return markers


def check_emulation(target: TargetSettings, binfmt: Path = Path("/proc/sys/fs/binfmt_misc")) -> None:
    """A foreign architecture runs under qemu user emulation; say what is missing if it is not
    set up (./setup.sh prepares it when settings.yaml has a foreign target)."""
    from mirror_builder.config.settings import host_debian_arch

    if target.arch == host_debian_arch() or (target.arch == "i386" and host_debian_arch() == "amd64"):
        return
    qemu = QEMU_NAMES.get(target.arch, target.arch)
    if not (binfmt / "status").exists():
        raise ContainerError(f"target {target.name} ({target.arch}) needs qemu user emulation, but "
                             f"binfmt_misc is not mounted; run ./setup.sh (it installs "
                             f"qemu-user-static and mounts binfmt_misc)")
    if not (binfmt / f"qemu-{qemu}").exists():
        raise ContainerError(f"target {target.name} ({target.arch}) needs qemu-{qemu} registered "
                             f"with binfmt_misc; run ./setup.sh (it installs qemu-user-static)")


def _uv_binary() -> Path:
    try:
        import uv

        return Path(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return Path(found)
    raise ContainerError("the uv binary is not installed beside mirror-builder; reinstall the package")
