"""The machine's build cache (CACHE_DIR/builds): a wheel built for one output is taken by every
other output whose build of that version would be the same (same build key), after the same
smoke test, and says so; a corrupt entry is never served; prune waits for running builds."""

import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from mirror_builder.buildcache.store import BuildCache, CorruptEntry
from mirror_builder.config.settings import BuildCacheSettings
from mirror_builder.engine.context import Options
from test_bootstrap import FakeBuilder, Package, bootstrap  # noqa: F401  (the fixture)

TREE_VERSION = Version("1.0")
TREE = {"app": {"1.0": Package(build_requires=["tool"], requires_dist=["lib"])},
        "lib": {"1.0": Package()},
        "tool": {"1.0": Package()}}


def records_of(output, name):
    return [json.loads(p.read_text()) for p in (output / "records" / name).glob("*.build.json")]


def bootstrap_into(bootstrap, output, packages=TREE, options=None):
    bootstrapper, builder = bootstrap.make(packages, output=output, options=options)
    report = bootstrapper.run([Requirement("app")])
    return report, builder


# -- across outputs --------------------------------------------------------------------------

def test_a_second_output_builds_nothing_the_first_built(bootstrap, tmp_path):
    _, first = bootstrap_into(bootstrap, tmp_path / "a")
    report, second = bootstrap_into(bootstrap, tmp_path / "b")

    assert sorted(name for name, _ in first.builds) == ["app", "lib", "tool"]
    assert second.builds == []
    assert {w.status for w in report.wheels} == {"cached"}
    for name in ("app", "lib", "tool"):
        (a_wheel,) = (tmp_path / "a" / "files" / name).glob("*.whl")
        (b_wheel,) = (tmp_path / "b" / "files" / name).glob("*.whl")
        assert a_wheel.read_bytes() == b_wheel.read_bytes()
        (record,) = records_of(tmp_path / "b", name)
        assert record["from_cache"]["output"] == str(tmp_path / "a")
        assert record["from_cache"]["build_key"] == record["build_key"]
        assert (tmp_path / "b" / "records" / name / f"{b_wheel.name}.log").is_file()
    app = next(w for w in report.wheels if w.name == "app")
    assert app.note.startswith("built ") and app.note.endswith(f"for {tmp_path / 'a'}")
    # The same smoke test as a build of its own, before it was published.
    assert "app-1.0-py3-none-any.whl" in second.smoke_tester.tested


def test_the_second_outputs_records_follow_the_record_schema(bootstrap, tmp_path):
    import jsonschema

    import mirror_builder

    schema = json.loads((Path(mirror_builder.__file__).parent / "data" /
                         "build-record.schema.json").read_text())
    bootstrap_into(bootstrap, tmp_path / "a")
    bootstrap_into(bootstrap, tmp_path / "b")
    for name in ("app", "lib", "tool"):
        (record,) = records_of(tmp_path / "b", name)
        jsonschema.Draft202012Validator(schema).validate(record)


def test_its_sdist_is_archived_in_the_second_output_too(bootstrap, tmp_path):
    bootstrap_into(bootstrap, tmp_path / "a")
    bootstrap_into(bootstrap, tmp_path / "b")
    assert list((tmp_path / "b" / "sources" / "files" / "app").glob("app-1.0.tar.gz"))


def test_a_changed_override_is_not_taken_from_the_cache_and_says_why(bootstrap, tmp_path, caplog):
    bootstrap_into(bootstrap, tmp_path / "a")
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "lib.yaml").write_text("env: {FAST: '1'}\n")

    _, second = bootstrap_into(bootstrap, tmp_path / "b", options=Options(explain_rebuild=True))

    assert [name for name, _ in second.builds] == ["lib"]
    assert "lib==1.0: not taken from the build cache: its overrides changed" in caplog.text


def test_a_corrupt_entry_is_rebuilt_not_published(bootstrap, tmp_path):
    bootstrap_into(bootstrap, tmp_path / "a")
    cache = BuildCache(bootstrap.cache / "builds")
    (entry,) = cache.entries("lib")
    blob = cache.blob(entry.wheel_sha256)
    blob.write_bytes(blob.read_bytes()[:100])  # truncated

    _, second = bootstrap_into(bootstrap, tmp_path / "b")

    assert [name for name, _ in second.builds] == ["lib"]
    (record,) = records_of(tmp_path / "b", "lib")
    assert "from_cache" not in record
    # The rebuilt wheel is in the cache again, whole.
    assert [e.wheel_sha256 for e in cache.entries("lib")] == [record["wheel_sha256"]]


def test_without_the_cache_everything_is_built(bootstrap, tmp_path):
    bootstrap_into(bootstrap, tmp_path / "a")
    _, second = bootstrap_into(bootstrap, tmp_path / "b", options=Options(build_cache=False))
    assert sorted(name for name, _ in second.builds) == ["app", "lib", "tool"]


# -- the store -------------------------------------------------------------------------------

def stored(tmp_path, name="demo", key="ab" * 32, content=b"wheel bytes"):
    cache = BuildCache(tmp_path / "builds")
    wheel = tmp_path / f"{name}-1.0-py3-none-any.whl"
    wheel.write_bytes(content)
    record = {"name": name, "version": "1.0", "build_key": key}
    return cache, cache.put(record, wheel, None, tmp_path / "out")


def test_a_blob_that_is_not_its_digest_is_refused(tmp_path):
    cache, entry = stored(tmp_path)
    cache.blob(entry.wheel_sha256).write_bytes(b"other bytes")
    with pytest.raises(CorruptEntry, match="corrupt or truncated"):
        cache.take_wheel(entry, tmp_path / "taken")
    assert not (tmp_path / "taken" / entry.wheel).exists()


def test_a_missing_blob_is_refused(tmp_path):
    cache, entry = stored(tmp_path)
    cache.blob(entry.wheel_sha256).unlink()
    with pytest.raises(CorruptEntry, match="missing"):
        cache.take_wheel(entry, tmp_path / "taken")


def test_verify_names_every_bad_entry(bootstrap, tmp_path):
    bootstrap_into(bootstrap, tmp_path / "a")
    cache = BuildCache(bootstrap.cache / "builds")
    assert cache.verify() == (3, [])
    (lib,) = cache.entries("lib")
    cache.blob(lib.wheel_sha256).write_bytes(b"x")
    (tool,) = cache.entries("tool")
    data = json.loads(tool.path.read_text())
    data["record"]["image"]["id"] = "sha256:forged"  # a record changed after the fact
    tool.path.write_text(json.dumps(data))

    count, problems = cache.verify()

    assert count == 3
    assert sorted((p.entry.parent.name, p.detail) for p in problems) == [
        ("lib", "its wheel is corrupt or truncated"),
        ("tool", "its build key does not match its record")]


def test_an_entry_whose_record_does_not_make_its_key_is_dropped_and_rebuilt(bootstrap, tmp_path):
    bootstrap_into(bootstrap, tmp_path / "a")
    cache = BuildCache(bootstrap.cache / "builds")
    (tool,) = cache.entries("tool")
    data = json.loads(tool.path.read_text())
    data["record"]["patches"] = [{"name": "tool/evil.patch", "sha256": "0" * 64}]
    tool.path.write_text(json.dumps(data))

    _, second = bootstrap_into(bootstrap, tmp_path / "b")

    # tool is built again, so app, whose build environment it is, too; lib still comes cached.
    assert [name for name, _ in second.builds] == ["tool", "app"]


def test_an_unreadable_entry_file_is_skipped_not_fatal(tmp_path):
    cache, entry = stored(tmp_path)
    entry.path.write_text("{half")
    assert cache.entries("demo") == []


def test_prune_removes_entries_unused_for_long_and_blobs_no_entry_names(tmp_path):
    cache, old = stored(tmp_path, name="old", key="aa" * 32, content=b"old wheel")
    _, new = stored(tmp_path, name="new", key="bb" * 32, content=b"new wheel")
    past = time.time() - 40 * 86400
    os.utime(old.path, (past, past))

    removed, freed = cache.prune(timedelta(days=30))

    assert [e.name for e in removed] == ["old"]
    assert freed == len(b"old wheel")
    assert not cache.blob(old.wheel_sha256).exists()
    assert cache.blob(new.wheel_sha256).exists()


def test_prune_waits_for_a_running_build(tmp_path):
    cache, old = stored(tmp_path)
    past = time.time() - 40 * 86400
    os.utime(old.path, (past, past))
    pruned = threading.Event()
    with cache.locked():  # a run that may take from the cache
        worker = threading.Thread(target=lambda: (cache.prune(timedelta(days=30)),
                                                  pruned.set()))
        worker.start()
        time.sleep(0.3)
        assert not pruned.is_set() and old.path.exists()
    worker.join(10)
    assert pruned.is_set() and not old.path.exists()


# -- two runs at once ------------------------------------------------------------------------

class SlowBuilder(FakeBuilder):
    """Builds that take a while, so that two runs meet in the middle of one."""

    def build(self, request):
        time.sleep(0.4)
        return super().build(request)


def test_two_runs_at_once_into_two_outputs_build_each_version_once(bootstrap, tmp_path):
    builders = [SlowBuilder(tmp_path / f"work-{i}") for i in range(2)]
    runs = [bootstrap.make(TREE, builder=builders[i], output=tmp_path / f"out-{i}")[0]
            for i in range(2)]
    errors = []

    def run(bootstrapper):
        try:
            bootstrapper.run([Requirement("app")])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert sorted(name for b in builders for name, _ in b.builds) == ["app", "lib", "tool"]
    for name in ("app", "lib", "tool"):
        wheels = [next((tmp_path / f"out-{i}" / "files" / name).glob("*.whl")).read_bytes()
                  for i in range(2)]
        assert wheels[0] == wheels[1], name


# -- another machine's cache as a read-only source -------------------------------------------

def from_other_machine(bootstrap, tmp_path, source_url, output="b"):
    """Bootstrap into a fresh output on a 'machine' with an empty cache of its own, whose
    settings name source_url as a build cache source."""
    bootstrapper, builder = bootstrap.make(
        TREE, output=tmp_path / output, cache_dir=tmp_path / f"cache-{output}",
        build_cache=BuildCacheSettings(sources=(source_url,)))
    report = bootstrapper.run([Requirement("app")])
    return report, builder


def test_another_machines_cache_over_file_urls_gives_every_wheel(bootstrap, tmp_path):
    bootstrap_into(bootstrap, tmp_path / "a")
    source = (bootstrap.cache / "builds").as_uri() + "/"

    report, builder = from_other_machine(bootstrap, tmp_path, source)

    assert builder.builds == []
    (record,) = records_of(tmp_path / "b", "app")
    assert record["from_cache"]["output"] == f"{tmp_path / 'a'} (from {source})"
    # Now in this machine's own cache too, checked like every entry.
    assert BuildCache(tmp_path / "cache-b" / "builds").verify() == (3, [])


def test_a_remote_entry_whose_record_was_changed_is_not_taken(bootstrap, tmp_path, caplog):
    bootstrap_into(bootstrap, tmp_path / "a")
    cache = BuildCache(bootstrap.cache / "builds")
    (lib,) = cache.entries("lib")
    data = json.loads(lib.path.read_text())
    data["record"]["settings"]["package"]["env"] = {"EVIL": "1"}  # the key no longer follows
    lib.path.write_text(json.dumps(data))

    _, builder = from_other_machine(bootstrap, tmp_path, (bootstrap.cache / "builds").as_uri())

    assert [name for name, _ in builder.builds] == ["lib"]
    assert "does not make its own build key; not taken" in caplog.text


def test_a_remote_blob_that_is_not_its_digest_is_not_taken(bootstrap, tmp_path, caplog):
    bootstrap_into(bootstrap, tmp_path / "a")
    cache = BuildCache(bootstrap.cache / "builds")
    (lib,) = cache.entries("lib")
    cache.blob(lib.wheel_sha256).write_bytes(b"PK not the wheel")

    _, builder = from_other_machine(bootstrap, tmp_path, (bootstrap.cache / "builds").as_uri())

    assert [name for name, _ in builder.builds] == ["lib"]
    assert "is not the bytes of its digest; not taken" in caplog.text


def test_a_cache_served_over_http_is_a_source_and_an_unreachable_one_is_passed_over(
        bootstrap, tmp_path, caplog):
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    bootstrap_into(bootstrap, tmp_path / "a")
    handler = functools.partial(SimpleHTTPRequestHandler,
                                directory=str(bootstrap.cache / "builds"))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        _, builder = from_other_machine(bootstrap, tmp_path, url)
        assert builder.builds == []
    finally:
        server.shutdown()
        server.server_close()
    _, builder = from_other_machine(bootstrap, tmp_path, url, output="c")  # gone now
    assert sorted(name for name, _ in builder.builds) == ["app", "lib", "tool"]
    assert "passed over" in caplog.text


# -- rebuild numbers -------------------------------------------------------------------------

def test_a_fresh_output_takes_a_first_builds_wheel_not_a_rebuilds(bootstrap, tmp_path):
    from mirror_builder.jobs.triggers import RebuildRequest

    bootstrap_into(bootstrap, tmp_path / "a")
    first = next((tmp_path / "a" / "files" / "app").glob("*.whl")).read_bytes()
    bootstrapper, _ = bootstrap.make(TREE, output=tmp_path / "a")
    bootstrapper.rebuild("app", TREE_VERSION, RebuildRequest(reason="new compiler"))
    assert sorted(e.number for e in BuildCache(bootstrap.cache / "builds").entries("app")) == [0, 1]

    _, second = bootstrap_into(bootstrap, tmp_path / "b")

    assert second.builds == []
    (wheel,) = (tmp_path / "b" / "files" / "app").glob("*.whl")
    assert wheel.name == "app-1.0-py3-none-any.whl" and wheel.read_bytes() == first


def test_a_post_release_rebuild_is_not_taken_where_the_number_is_a_build_tag(bootstrap, tmp_path):
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "app.yaml").write_text("changelog:\n  '1.0': [new compiler]\n")
    bootstrapper, _ = bootstrap.make(TREE, numbering="post-release", output=tmp_path / "a")
    bootstrapper.run([Requirement("app")])
    assert [w.name for w in (tmp_path / "a" / "files" / "app").glob("*.whl")] == [
        "app-1.0.post1-py3-none-any.whl"]

    bootstrapper, builder = bootstrap.make(TREE, output=tmp_path / "b")  # build tags
    bootstrapper.run([Requirement("app")])

    assert [name for name, _ in builder.builds] == ["app"]  # lib and tool: number 0, shared
    assert [w.name for w in (tmp_path / "b" / "files" / "app").glob("*.whl")] == [
        "app-1.0-1-py3-none-any.whl"]


def test_a_build_whose_backend_asked_for_more_is_taken_too(bootstrap, tmp_path):
    # hatchling's case: its backend asks for packaging on top of [build-system] requires; in a
    # fresh output packaging is staged (not yet published) when hatchling is looked up.
    tree = {"app": {"1.0": Package(build_requires=["tool"], backend_requires=["helper"])},
            "tool": {"1.0": Package()}, "helper": {"1.0": Package()}}
    bootstrapper, first = bootstrap.make(tree, output=tmp_path / "a")
    bootstrapper.run([Requirement("app")])
    assert sorted(name for name, _ in first.builds) == ["app", "app", "helper", "tool"]

    bootstrapper, second = bootstrap.make(tree, output=tmp_path / "b")
    bootstrapper.run([Requirement("app")])

    assert second.builds == []


def test_inspect_says_a_wheel_came_from_the_cache_and_whose_build_it_is(bootstrap, tmp_path):
    import io

    from rich.console import Console

    from mirror_builder.cli.views import _details

    bootstrap_into(bootstrap, tmp_path / "a")
    bootstrap_into(bootstrap, tmp_path / "b")
    (record,) = records_of(tmp_path / "b", "app")
    console = Console(width=300, record=True, file=io.StringIO())
    console.print(_details(record))
    text = " ".join(console.export_text().split())
    assert f"taken from the build cache: built {record['from_cache']['built_at'][:19]} for " \
           f"{tmp_path / 'a'}" in text
    (own,) = records_of(tmp_path / "a", "app")
    console = Console(width=300, record=True, file=io.StringIO())
    console.print(_details(own))
    assert "build cache" not in console.export_text()


def test_a_wheel_cached_before_wheels_carried_an_sbom_is_built_again(bootstrap, tmp_path):
    bootstrap_into(bootstrap, tmp_path / "a")
    cache = next(tmp_path.rglob("builds"))
    for entry_file in cache.rglob("*.json"):
        data = json.loads(entry_file.read_text())
        if isinstance(data, dict) and isinstance(data.get("record"), dict) and \
                data["record"].get("name") == "lib":
            del data["record"]["sbom"]  # as a mirror-builder before SBOMs wrote it
            entry_file.write_text(json.dumps(data))
    _, second = bootstrap_into(bootstrap, tmp_path / "b")
    assert sorted(name for name, _ in second.builds) == ["lib"]
