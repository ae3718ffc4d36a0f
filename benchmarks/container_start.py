"""What a container start costs with and without its own user namespace (a leased block of ids and the
writable mounts given to it with podman's U option), and what a build waits for when it takes a
container started before it (build/warm.py), run the way a build is: PodmanService.run with a
read-only root, /out and /tmp writable, the source and job read-only, the image's python3 run.

    .venv/bin/python benchmarks/container_start.py [--runs 20]

Each run is timed from the moment a build would ask for its container to the container's end.
The runs alternate between the three ways, so a busy machine slows all alike. "Without" is
today's run with the user-namespace settings taken out of podman's create call; it exists only
here, to measure against. "Warm" is a container started a moment before (not timed) whose
python waits for /job/go, as the driver waits for its job. The first run of each way is
reported on its own (a first start could pay a one-time cost, such as copying the image's
layers for the namespace).
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

    def start(self, spec):
        from podman.domain.containers_manager import ContainersManager

        original = ContainersManager.create
        if self.plain:
            ContainersManager.create = without_user_namespace(original)
        try:
            return super().start(spec)
        finally:
            ContainersManager.create = original


# The container's work: wait for /job/go (there at once unless warm), then write a result.
SCRIPT = """import os, time
while not os.path.exists("/job/go"):
    time.sleep(0.001)
open("/out/result.json", "w").write("x")
"""


def one_run(podman: Measured, image: str, work: Path, way: str) -> float:
    plain = way == "without user namespace"
    folders = JobFolders.create(work, {"mode": "benchmark"})
    source = Path(tempfile.mkdtemp(dir=work))
    (source / "setup.py").write_text("")
    source.chmod(0o755)
    if plain:  # what a build's writable folders needed before user namespaces
        os.chown(folders.out, BUILDER_UID, BUILDER_UID)
        os.chown(folders.scratch, BUILDER_UID, BUILDER_UID)
    spec = RunSpec(image=image, command=["python3", "-c", SCRIPT],
                   mounts=(Mount(source, "/src"), Mount(folders.job, "/job"),
                           Mount(folders.out, "/out", read_only=False),
                           Mount(folders.scratch, "/tmp", read_only=False)),
                   user=f"{BUILDER_UID}:{BUILDER_UID}", read_only_root=True, timeout_seconds=60)
    podman.plain = plain
    warm = None
    if way == "warm":
        warm = podman.start(spec)
        time.sleep(0.3)  # started while another build would run
    started = time.perf_counter()
    if warm is not None:
        warm.taken()
    (folders.job / "go").write_text("")
    result = podman.run(spec, work / "log", started=warm)
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, (work / "log").read_text()
    assert (folders.out / "result.json").is_file()
    assert bool(result.uid_map) != plain, result
    folders.remove()
    return seconds


WAYS = ("without user namespace", "with user namespace", "warm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="mb-bench-") as tmp:
        work = Path(tmp)
        with Measured(work / "state") as podman:
            image = ImageManager(podman, settings.cache_dir).ensure(settings.targets[0]).tag
            times: dict[str, list[float]] = {way: [] for way in WAYS}
            for _ in range(args.runs):
                for way in WAYS:
                    times[way].append(one_run(podman, image, work, way))
    for label in WAYS:
        runs = times[label]
        rest = runs[1:]
        print(f"{label:28s} first {runs[0] * 1000:6.0f} ms, then median "
              f"{statistics.median(rest) * 1000:6.0f} ms, mean {statistics.mean(rest) * 1000:6.0f} ms "
              f"(min {min(rest) * 1000:.0f}, max {max(rest) * 1000:.0f}; {len(rest)} runs)")


if __name__ == "__main__":
    main()
