"""What a container start costs with and without its own user namespace (a leased block of ids and the
writable mounts given to it with podman's U option), run the way a build is: PodmanService.run
with a read-only root, /out and /tmp writable, the source and driver read-only.

    .venv/bin/python benchmarks/container_start.py [--runs 20]

The runs alternate between the two ways, so a busy machine slows both alike. "Without" is
today's run with the user-namespace settings taken out of podman's create call; it exists only
here, to measure against. The first run of each way is reported on its own (a first start could
pay a one-time cost, such as copying the image's layers for the namespace).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from mirror_builder.sandbox.jobfolders import BUILDER_UID, JobFolders
from mirror_builder.sandbox.images import ImageManager
from mirror_builder.sandbox.podman import Mount, PodmanService, RunSpec
from mirror_builder.config.settings import load_settings


def without_user_namespace(create):
    """podman-py's create, minus the user namespace and the U option."""
    def create_plain(manager, image, command=None, **kwargs):
        kwargs.pop("userns_mode", None)
        kwargs.pop("idmappings", None)
        kwargs["mounts"] = [{k: v for k, v in m.items() if k != "chown"} for m in kwargs["mounts"]]
        return create(manager, image, command, **kwargs)
    return create_plain


class Measured(PodmanService):
    """PodmanService whose runs can leave the user namespace out (for the comparison only)."""

    plain = False

    def _run(self, client, spec, log_path, APIError, on_started=None):
        from podman.domain.containers_manager import ContainersManager

        original = ContainersManager.create
        if self.plain:
            ContainersManager.create = without_user_namespace(original)
        try:
            return super()._run(client, spec, log_path, APIError, on_started)
        finally:
            ContainersManager.create = original


def one_run(podman: Measured, image: str, work: Path, plain: bool) -> float:
    folders = JobFolders.create(work, {"mode": "benchmark"})
    source = Path(tempfile.mkdtemp(dir=work))
    (source / "setup.py").write_text("")
    source.chmod(0o755)
    if plain:  # what a build's writable folders needed before user namespaces
        os.chown(folders.out, BUILDER_UID, BUILDER_UID)
        os.chown(folders.scratch, BUILDER_UID, BUILDER_UID)
    spec = RunSpec(image=image, command=["sh", "-c", "echo x > /out/result.json; id -u > /tmp/u"],
                   mounts=(Mount(source, "/src"), Mount(folders.job, "/job"),
                           Mount(folders.out, "/out", read_only=False),
                           Mount(folders.scratch, "/tmp", read_only=False)),
                   user=f"{BUILDER_UID}:{BUILDER_UID}", read_only_root=True, timeout_seconds=60)
    podman.plain = plain
    started = time.perf_counter()
    result = podman.run(spec, work / "log")
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, (work / "log").read_text()
    assert (folders.out / "result.json").is_file()
    assert bool(result.uid_map) != plain, result
    folders.remove()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="mb-bench-") as tmp:
        work = Path(tmp)
        with Measured(work / "state") as podman:
            image = ImageManager(podman, settings.cache_dir).ensure(settings.targets[0]).tag
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.runs):
                for plain in (True, False):
                    times[plain].append(one_run(podman, image, work, plain))
    for plain, label in ((True, "without user namespace"), (False, "with user namespace")):
        runs = times[plain]
        rest = runs[1:]
        print(f"{label:28s} first {runs[0] * 1000:6.0f} ms, then median "
              f"{statistics.median(rest) * 1000:6.0f} ms, mean {statistics.mean(rest) * 1000:6.0f} ms "
              f"(min {min(rest) * 1000:.0f}, max {max(rest) * 1000:.0f}; {len(rest)} runs)")


if __name__ == "__main__":
    main()
