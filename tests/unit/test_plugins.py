"""Plugins: per-package code with typed hooks, checked when loaded, called in the build path."""

import json
import os
import textwrap

import pytest
from packaging.requirements import Requirement

from mirror_builder.errors import BuildError, SettingsError
from mirror_builder.config.plugins import load_plugins
from test_bootstrap import Package, bootstrap  # noqa: F401  (the fixture)


def write_plugin(folder, name, body):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


GOOD = """
    from __future__ import annotations

    import json

    from mirror_builder.config.plugins import BuildContext, PrepareContext, WheelContext


    def prepare_source(context: PrepareContext) -> None:
        spec = json.loads((context.project / "fake.json").read_text())
        spec["requires_dist"].append("added-by-plugin")
        (context.project / "fake.json").write_text(json.dumps(spec))


    def build_environment(context: BuildContext) -> dict[str, str]:
        return {"FROM_PLUGIN": f"{context.name}-{context.version}-{context.jobs}"}


    def check_wheel(context: WheelContext) -> None:
        assert context.wheel.name.endswith(".whl")


    def _helper():
        return "helpers start with an underscore"
"""


def test_a_plugin_file_is_loaded_with_its_hooks(tmp_path):
    write_plugin(tmp_path, "app", GOOD)
    plugins = load_plugins(tmp_path)
    assert sorted(plugins["app"].hooks) == ["build_environment", "check_wheel", "prepare_source"]
    assert plugins["app"].origin == str(tmp_path / "app.py")


@pytest.mark.parametrize("body, message", [
    ("def prepare_source(ctx):\n    pass\n",
     "hook prepare_source must be `def prepare_source(context: PrepareContext) -> None`, "
     "not `def prepare_source(ctx)`"),
    ("from mirror_builder.config.plugins import BuildContext\n"
     "def build_environment(context: BuildContext, extra) -> dict[str, str]:\n    return {}\n",
     "hook build_environment must be `def build_environment(context: BuildContext) -> dict[str,str]`"),
    ("from mirror_builder.config.plugins import BuildContext\n"
     "def build_environment(context: BuildContext) -> dict:\n    return {}\n",
     "hook build_environment must be"),
    ("def prepare_sources(context):\n    pass\n",
     "unknown hook 'prepare_sources' (known: prepare_source, build_environment, check_wheel"),
    ("raise RuntimeError('broken on import')\n", "the plugin does not load: RuntimeError: broken on import"),
])
def test_a_plugin_that_does_not_match_is_an_error_naming_the_file(tmp_path, body, message):
    write_plugin(tmp_path, "app", body)
    with pytest.raises(SettingsError) as raised:
        load_plugins(tmp_path)
    assert str(raised.value).startswith(str(tmp_path / "app.py"))
    assert message in str(raised.value)


def test_hooks_run_in_the_build_path(bootstrap):
    write_plugin(bootstrap.overrides, "app", GOOD)
    packages = {"app": {"1.0": Package()}, "added-by-plugin": {"1.0": Package()}}
    pipeline, builder = bootstrap.make(packages)
    report = pipeline.run([Requirement("app")])
    # prepare_source added a dependency, which was then bootstrapped too
    assert [w.name for w in report.wheels] == ["app", "added-by-plugin"]
    app = next(r for r in builder.requests if r.source.name == "app")
    assert app.env.environment["FROM_PLUGIN"] == "app-1.0-" + str(os.cpu_count() or 2)
    record = json.loads(next((bootstrap.output / "records" / "app").glob("*.build.json")).read_text())
    assert record["settings"]["plugin"]["hooks"] == ["build_environment", "check_wheel",
                                                      "prepare_source"]


def test_a_failing_check_keeps_the_wheel_out_of_the_index(bootstrap):
    write_plugin(bootstrap.overrides, "app", """
        from mirror_builder.config.plugins import WheelContext

        def check_wheel(context: WheelContext) -> None:
            raise ValueError("no tests directory allowed")
    """)
    with pytest.raises(BuildError, match=r"app==1.0: plugin .*app.py: check_wheel failed: "
                                         r"ValueError: no tests directory allowed"):
        bootstrap({"app": {"1.0": Package()}}, "app")
    assert not (bootstrap.output / "files" / "app").exists()
