"""What a build image is (ImageRef), how it is named, and which image each target last became.

No podman here: plan reads these without starting it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from mirror_builder.config.settings import TargetSettings
from mirror_builder.errors import ContainerError
from mirror_builder.files import atomic_write_text


@dataclass(frozen=True)
class ImageRef:
    """A build image and what it was made from, for the build record."""

    tag: str
    id: str
    base: str
    containerfile: str
    containerfile_sha256: str
    target: str
    # The Debian packages in the image, "name=version", for the build record.
    system_packages: tuple[str, ...] = ()
    # For a per-package layer: the packages it added to the target image.
    layer_packages: tuple[str, ...] = ()


def images_dir(cache_dir: Path) -> Path:
    """Where image build logs, per-image caches and the recipe records are kept."""
    return cache_dir / "images"


def base_tag(target: TargetSettings) -> str:
    return f"localhost/mirror-builder-base:{target.distribution}-{target.arch}"


def containerfile_bytes(target: TargetSettings) -> bytes:
    if not target.containerfile.is_file():
        raise ContainerError(f"target {target.name}: Containerfile {target.containerfile} not found")
    return target.containerfile.read_bytes()


def image_tag(target: TargetSettings, containerfile: bytes, uv_sha256: str, base_id: str) -> str:
    """The target image's tag, named by everything it is made from: a change makes a new image."""
    key = hashlib.sha256(b"\0".join([
        containerfile, uv_sha256.encode(), base_id.encode(), target.arch.encode(),
    ])).hexdigest()[:16]
    return f"{_repository(target)}:{key}"


def _repository(target: TargetSettings) -> str:
    return f"localhost/mirror-builder-{target.name}"


def markers_file(images: Path, image_id: str) -> Path:
    """An image's PEP 508 marker values, measured once per image id (images: images_dir())."""
    return images / f"{image_id}.markers.json"


def packages_file(images: Path, image_id: str) -> Path:
    """An image's Debian packages, one "name=version" a line, listed once per image id."""
    return images / f"{image_id}.packages.txt"


def _recipe_file(images: Path, target: TargetSettings, containerfile: bytes) -> Path:
    # Named by what can be known without podman. The image tag also hashes the base image's id
    # (podman's) and the uv binary (no marker depends on it); a base image made again since is
    # picked up by the next ensure, which records the image it made or found.
    key = hashlib.sha256(b"\0".join([containerfile, base_tag(target).encode()])).hexdigest()[:16]
    return images / "targets" / f"{target.name}-{key}.json"


def record_image(images: Path, target: TargetSettings, containerfile: bytes, tag: str,
                 image_id: str) -> None:
    """Remember that this target, with this Containerfile, is now the image tag/image_id."""
    path = _recipe_file(images, target, containerfile)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"tag": tag, "id": image_id}, indent=2) + "\n")


def recorded_markers(images: Path, target: TargetSettings) -> dict[str, str] | None:
    """The markers of the image last made for the target as it is configured now; None if that
    image was never made (or never measured) on this machine."""
    path = _recipe_file(images, target, containerfile_bytes(target))
    try:
        image_id = json.loads(path.read_text())["id"]
        return json.loads(markers_file(images, image_id).read_text())
    except (FileNotFoundError, ValueError, KeyError, TypeError):  # none, or a damaged one
        return None


def recorded_packages(images: Path, target: TargetSettings) -> tuple[str, ...]:
    """The Debian packages ("name=version") of the image last made for the target as it is
    configured now; () if that image was never made (or never listed) on this machine."""
    try:
        path = _recipe_file(images, target, containerfile_bytes(target))
        image_id = json.loads(path.read_text())["id"]
        text = packages_file(images, image_id).read_text()
    except (ContainerError, FileNotFoundError, ValueError, KeyError, TypeError):
        return ()
    return tuple(line for line in text.splitlines() if "=" in line)


def target_of_image(tag: str, targets: tuple[TargetSettings, ...]) -> TargetSettings | None:
    """The target whose image (or per-package layer on it) has this tag (see image_tag)."""
    repository = tag.rpartition(":")[0].removesuffix("-layer")
    return next((t for t in targets if repository == _repository(t)), None)
