"""`bootstrap --timeline FILE`: where a run's time went, per package and phase."""

import json
import threading

from packaging.requirements import Requirement

from mirror_builder.engine.context import Options
from mirror_builder.timeline import Timeline
from test_bootstrap import Package, bootstrap  # noqa: F401  (the fixture)


def test_spans_from_many_threads_are_kept_in_order_with_their_parts(tmp_path):
    timeline = Timeline()

    def work(number):
        with timeline.span(f"pkg{number}==1.0", "container") as parts:
            parts["build_wheel"] = 0.5

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timeline.write(tmp_path / "timeline.json", slots=2)
    written = json.loads((tmp_path / "timeline.json").read_text())
    assert written["slots"] == 2 and written["peak_rss_bytes"] > 0
    spans = written["spans"]
    assert len(spans) == 8 and all(s["parts"] == {"build_wheel": 0.5} for s in spans)
    assert [s["start"] for s in spans] == sorted(s["start"] for s in spans)
    assert all(0 <= s["start"] <= s["end"] <= written["wall_seconds"] for s in spans)


def test_a_bootstrap_writes_each_packages_phases_to_the_timeline_file(bootstrap, tmp_path):
    path = tmp_path / "timeline.json"
    bootstrapper, _ = bootstrap.make({
        "app": {"1.0": Package(build_requires=["tool"])},
        "tool": {"1.0": Package()},
    }, options=Options(timeline=path))
    bootstrapper.run([Requirement("app")])
    spans = json.loads(path.read_text())["spans"]
    phases = {(s["package"], s["phase"]) for s in spans}
    for pin in ("app==1.0", "tool==1.0"):
        for phase in ("fetch", "prepare", "wait-slot", "container", "stamp", "publish"):
            assert (pin, phase) in phases
    assert ("requirements", "resolve") in phases
    assert any(s["phase"] == "smoke" and "app==1.0" in s["package"] for s in spans)
