"""The sandbox: podman (the only code that talks to it) and the in-container driver."""

from pathlib import Path

# Runs inside the build container (copied in as /mb/mb_driver.py); never imported on the host.
DRIVER = Path(__file__).parent / "driver.py"
# Its helper for the SBOM, copied in as /mb/lib/mb_linked.py.
LINKED = Path(__file__).parent / "linked.py"
# Runs PEP 517 hooks in forked processes, copied in as /mb/lib/mb_hookserver.py.
HOOKSERVER = Path(__file__).parent / "hookserver.py"
# What a failed build's cgroup says about its limits, copied in as /mb/lib/mb_limits.py.
LIMITS = Path(__file__).parent / "limits.py"
# The modules a smoke test imports from a wheel, copied in as /mb/lib/mb_toplevel.py.
TOPLEVEL = Path(__file__).parent / "toplevel.py"
# Smoke tests, in a container of their own or a build's, copied in as /mb/lib/mb_smoke.py.
SMOKERUN = Path(__file__).parent / "smokerun.py"
# The environment uv runs in there, its cache seeded from the image, copied in as /mb/lib/mb_uvenv.py.
UVENV = Path(__file__).parent / "uvenv.py"
# An empty venv and a venv's freeze, without a process, copied in as /mb/lib/mb_venvs.py.
VENVS = Path(__file__).parent / "venvs.py"
# Waiting for the host's answer without polling (inotify), copied in as /mb/lib/mb_filewait.py.
FILEWAIT = Path(__file__).parent / "filewait.py"
