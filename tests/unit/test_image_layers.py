"""Per-package image layers: named by their content, built once, reused by every package that
needs the same set."""

from pathlib import Path

from mirror_builder.sandbox.imagenames import ImageRef
from mirror_builder.sandbox.images import ImageManager


class FakePodman:
    def __init__(self) -> None:
        self.images: dict[str, str] = {}
        self.built: list[tuple[str, str]] = []

    def image_id(self, tag):
        return self.images.get(tag)

    def build_image(self, context, containerfile, tag, buildargs, log_path, arch=None):
        self.built.append((tag, Path(containerfile).read_text()))
        self.images[tag] = f"sha256:{len(self.built):064d}"
        return self.images[tag]


BASE = ImageRef("localhost/mirror-builder-bookworm-x86_64:abc", "sha256:" + "1" * 64, "base", "cf",
                "0" * 64, "bookworm-x86_64")


def manager(tmp_path) -> tuple[ImageManager, FakePodman]:
    podman = FakePodman()
    images = ImageManager(podman, tmp_path)
    images._system_packages = lambda tag, image_id: ("gcc=12",)
    images._arch_of = lambda image: "amd64"
    return images, podman


def test_no_extra_packages_means_the_target_image_itself(tmp_path):
    images, podman = manager(tmp_path)
    assert images.with_system_packages(BASE, ()) is BASE
    assert podman.built == []


def test_the_same_set_of_packages_is_one_layer_built_once(tmp_path):
    images, podman = manager(tmp_path)
    first = images.with_system_packages(BASE, ("libxml2-dev", "libxslt1-dev"))
    again = images.with_system_packages(BASE, ("libxslt1-dev", "libxml2-dev", "libxml2-dev"))
    assert first.tag == again.tag and first.id == again.id
    assert len(podman.built) == 1
    tag, containerfile = podman.built[0]
    assert containerfile.startswith(f"FROM {BASE.tag}\n")
    assert "--no-install-recommends libxml2-dev libxslt1-dev" in containerfile
    assert first.layer_packages == ("libxml2-dev", "libxslt1-dev")


def test_another_set_or_another_base_is_another_layer(tmp_path):
    images, podman = manager(tmp_path)
    a = images.with_system_packages(BASE, ("libxml2-dev",))
    b = images.with_system_packages(BASE, ("libyaml-dev",))
    newer = ImageRef(BASE.tag, "sha256:" + "2" * 64, "base", "cf", "0" * 64, BASE.target)
    c = images.with_system_packages(newer, ("libxml2-dev",))
    assert len({a.tag, b.tag, c.tag}) == 3
    assert len(podman.built) == 3
