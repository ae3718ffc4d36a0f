"""Image names and the record of which image each target last became: making an image records
its markers where plan finds them without podman; a changed Containerfile is a target not made."""

import json
from pathlib import Path

from mirror_builder.config.settings import TargetSettings
from mirror_builder.sandbox import imagenames
from mirror_builder.sandbox.images import ImageManager
from mirror_builder.sandbox.podman import RunResult

MARKERS = {"python_full_version": "3.11.2", "platform_machine": "x86_64", "sys_platform": "linux"}


class FakePodman:
    """Knows the base image; builds an image by naming it; the probe prints MARKERS."""

    def __init__(self, base_tag: str) -> None:
        self.images = {base_tag: "sha256:" + "1" * 64}
        self.probes = 0

    def image_id(self, tag):
        return self.images.get(tag)

    def build_image(self, context, containerfile, tag, buildargs, log_path, arch=None):
        self.images[tag] = f"sha256:{len(self.images):064d}"
        return self.images[tag]

    def run(self, spec, log_path: Path) -> RunResult:
        self.probes += 1
        log_path.write_text(json.dumps(MARKERS) + "\n")
        return RunResult(exit_code=0, timed_out=False, seconds=0.1)


def target_in(tmp_path: Path) -> TargetSettings:
    containerfile = tmp_path / "Containerfile"
    if not containerfile.exists():
        containerfile.write_text("FROM $BASE_IMAGE\n")
    return TargetSettings(name="bookworm-x86_64", containerfile=containerfile)


def make_image(tmp_path: Path, target: TargetSettings) -> FakePodman:
    podman = FakePodman(imagenames.base_tag(target))
    images = ImageManager(podman, tmp_path / "cache")
    images._system_packages = lambda tag, image_id: ()
    images.marker_environment(images.ensure(target))
    return podman


def test_the_markers_of_a_made_image_are_found_without_podman(tmp_path):
    target = target_in(tmp_path)
    podman = make_image(tmp_path, target)
    assert podman.probes == 1
    found = imagenames.recorded_markers(imagenames.images_dir(tmp_path / "cache"), target)
    assert found == MARKERS


def test_a_target_whose_image_was_never_made_has_no_markers(tmp_path):
    target = target_in(tmp_path)
    assert imagenames.recorded_markers(imagenames.images_dir(tmp_path / "cache"), target) is None


def test_a_changed_containerfile_has_no_markers_until_its_image_is_made(tmp_path):
    target = target_in(tmp_path)
    make_image(tmp_path, target)
    target.containerfile.write_text("FROM $BASE_IMAGE\nRUN true\n")
    images = imagenames.images_dir(tmp_path / "cache")
    assert imagenames.recorded_markers(images, target) is None
    make_image(tmp_path, target)
    assert imagenames.recorded_markers(images, target) == MARKERS


def test_another_target_with_the_same_containerfile_is_another_record(tmp_path):
    target = target_in(tmp_path)
    make_image(tmp_path, target)
    arm = TargetSettings(name="bookworm-aarch64", containerfile=target.containerfile, arch="arm64")
    assert imagenames.recorded_markers(imagenames.images_dir(tmp_path / "cache"), arm) is None


def test_a_damaged_record_reads_as_no_image(tmp_path):
    target = target_in(tmp_path)
    make_image(tmp_path, target)
    images = imagenames.images_dir(tmp_path / "cache")
    (record,) = (images / "targets").iterdir()
    record.write_text("{not json")
    assert imagenames.recorded_markers(images, target) is None


def test_image_tags_are_named_as_before_so_no_existing_image_is_built_again():
    target = TargetSettings(name="bookworm-x86_64", containerfile=Path("unused"))
    tag = imagenames.image_tag(target, b"FROM $BASE_IMAGE\n", "ab" * 32, "sha256:" + "1" * 64)
    assert tag == "localhost/mirror-builder-bookworm-x86_64:f91dcc96fb00f307"
    assert imagenames.base_tag(target) == "localhost/mirror-builder-base:bookworm-amd64"
