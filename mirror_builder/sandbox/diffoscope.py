"""Debian's diffoscope, run in a container, to say in detail how two wheels differ.

It runs from a layer on the target's image (so that it reads the ELF files of that target with
that target's binutils), without network, as the unprivileged builder, the wheels mounted
read-only. Its text report is what `verify` keeps beside a record whose wheel did not reproduce.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mirror_builder.errors import ContainerError
from mirror_builder.sandbox.imagenames import ImageRef
from mirror_builder.sandbox.jobfolders import BUILDER_UID
from mirror_builder.sandbox.podman import Mount, PodmanService, RunSpec

# diffoscope without the recommended tools of every format it knows (hundreds of megabytes);
# zip files (unzip's zipinfo lists them) and ELF files (the image's binutils) are what wheels
# hold; xxd shows other binary files.
PACKAGES = ("diffoscope-minimal", "unzip", "xxd")
# Its report of a large native wheel can be huge; the first megabytes say what differs.
REPORT_LIMIT = 4 << 20


class Diffoscope:
    """Compares two files with diffoscope in a container. image: makes (once) or finds the
    image with diffoscope, when the first comparison needs it."""

    def __init__(self, podman: PodmanService, image: Callable[[], ImageRef], work_dir: Path,
                 timeout_seconds: float = 900) -> None:
        self.podman = podman
        self.image = image
        self.work_dir = work_dir
        self.timeout_seconds = timeout_seconds

    def __call__(self, published: Path, rebuilt: Path) -> str:
        """diffoscope's text report (empty if it found them equal). A ContainerError if it
        could not compare them."""
        image = self.image()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="diffoscope-", dir=self.work_dir))
        try:
            out, scratch = folder / "out", folder / "tmp"
            out.mkdir()
            scratch.mkdir()
            log_path = folder / "diffoscope.log"
            run = self.podman.run(RunSpec(
                image=image.tag,
                command=["diffoscope", "--no-progress", "--text", "/out/report.txt",
                         "--max-report-size", str(REPORT_LIMIT),
                         f"/published/{published.name}", f"/rebuilt/{rebuilt.name}"],
                mounts=(Mount(published, f"/published/{published.name}"),
                        Mount(rebuilt, f"/rebuilt/{rebuilt.name}"),
                        Mount(out, "/out", read_only=False),
                        Mount(scratch, "/tmp", read_only=False)),
                environment={"HOME": "/tmp", "LANG": "C.UTF-8"}, workdir="/tmp",
                user=f"{BUILDER_UID}:{BUILDER_UID}", network=False,
                timeout_seconds=self.timeout_seconds, memory="4g", read_only_root=True),
                log_path)
            report = out / "report.txt"
            # 0: the same, 1: differences reported; anything else is diffoscope's own failure.
            if run.exit_code not in (0, 1) or run.timed_out:
                tail = log_path.read_text(errors="replace")[-400:] if log_path.is_file() else ""
                raise ContainerError(f"diffoscope could not compare {published.name} with its "
                                     f"rebuild (exit status {run.exit_code}): {tail.strip()}")
            return report.read_text(errors="replace") if report.is_file() else ""
        finally:
            shutil.rmtree(folder, ignore_errors=True)
