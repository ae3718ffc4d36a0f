"""Plan popular top-level projects against the real index, and print how many plan at all and
how many plans are complete (every package's install requirements known before building).

    .venv/bin/python benchmarks/plan_popular.py [--list benchmarks/popular-projects.txt]
        [--target NAME] [--strict-versions] [--json FILE] [PROJECT ...]

Each project is planned by the real CLI (`mirror-builder plan --json`) in its own process, as
a user would run it; answers and sdists are cached on disk, so a second run is faster. Goals
(issue 20): 100% planned; at least 95% with a complete plan.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNKNOWN = "install requirements unknown"


@dataclass
class Outcome:
    project: str
    planned: bool
    packages: int
    seconds: float
    complete: bool
    skipped: int  # versions passed over because they cannot be built
    detail: str   # the error, or the packages whose install requirements are unknown


def plan(project: str, extra: list[str]) -> Outcome:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mirror_builder", "plan", "--json", project,
                           *extra], capture_output=True, text=True, cwd=HERE.parent)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        return Outcome(project, False, 0, seconds, False, 0, error)
    packages = json.loads(done.stdout)
    unknown = [f"{p['name']}=={p['version']}" for p in packages if UNKNOWN in p["note"]]
    skipped = sum(len(p.get("skipped", [])) for p in packages)
    return Outcome(project, True, len(packages), seconds, not unknown, skipped,
                   ", ".join(unknown))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", nargs="*")
    parser.add_argument("--list", type=Path, default=HERE / "popular-projects.txt")
    parser.add_argument("--target")
    parser.add_argument("--strict-versions", action="store_true")
    parser.add_argument("--json", type=Path, help="also write every outcome here")
    args = parser.parse_args()
    projects = args.projects or [line.split("#")[0].strip() for line in
                                 args.list.read_text().splitlines() if line.split("#")[0].strip()]
    extra = (["--target", args.target] if args.target else []) + \
        (["--strict-versions"] if args.strict_versions else [])
    outcomes = []
    print(f"{'project':24} {'planned':8} {'packages':>8} {'seconds':>8} {'complete':9} skipped")
    for project in projects:
        outcome = plan(project, extra)
        outcomes.append(outcome)
        print(f"{project:24} {'yes' if outcome.planned else 'NO':8} {outcome.packages:8} "
              f"{outcome.seconds:8.1f} {'yes' if outcome.complete else 'no':9} {outcome.skipped}",
              flush=True)
        if outcome.detail:
            print(f"    {outcome.detail[:400]}", flush=True)
    total = len(outcomes)
    planned = sum(o.planned for o in outcomes)
    complete = sum(o.complete for o in outcomes)
    print(f"\nplanned: {planned}/{total} ({100 * planned / total:.0f}%, goal 100%); "
          f"complete plans: {complete}/{total} ({100 * complete / total:.0f}%, goal 95%); "
          f"{sum(o.skipped for o in outcomes)} unbuildable versions passed over; "
          f"{sum(o.seconds for o in outcomes):.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
