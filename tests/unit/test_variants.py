"""Build variants (issue 17): declared in settings.yaml, a package's delta per variant in its
override file, the effective settings a build sees (a package without a delta is the same in
every variant, so it is shared), a variant's own plugin, its output's place, the record naming
it, and the command line that picks one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

import mirror_builder
from mirror_builder.cli.app import build_parser
from mirror_builder.cli.views import render_records
from mirror_builder.config.lint import Finding, configured, lint
from mirror_builder.config.overrides import load_package_settings
from mirror_builder.config.plugins import load_plugins, variant_plugin_names
from mirror_builder.config.settings import load_settings
from mirror_builder.config.variants import built_per_variant, delta_as_dict, package_settings_for
from mirror_builder.engine.context import Catalog
from mirror_builder.errors import SettingsError
from mirror_builder.index.outputlock import hold_output
from mirror_builder.layout import OutputLayout, variant_output
from mirror_builder.provenance.buildkey import as_json, overrides_changed

from conftest import REPO, clean_environment, error_lines
from test_import_graph import plan_settings  # noqa: F401  (the fixture: app needs tool to build)
from test_provenance import make_record

SCHEMA = json.loads((Path(mirror_builder.__file__).parent / "data" /
                     "build-record.schema.json").read_text())


def settings_file(tmp_path: Path, variants: str | None = "variants: {cpu: {}, cuda: {}}\n",
                  overrides: dict[str, str] | None = None) -> Path:
    """conf/settings.yaml (with these variants) and conf/overrides/<name>.yaml files."""
    conf = tmp_path / "conf"
    (conf / "overrides").mkdir(parents=True, exist_ok=True)
    for name, text in (overrides or {}).items():
        (conf / "overrides" / f"{name}.yaml").write_text(textwrap.dedent(text))
    path = conf / "settings.yaml"
    path.write_text(variants or "")
    return path


def settings_error(path: Path) -> str:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(path)
    return str(excinfo.value)


def package(tmp_path: Path, text: str, declared=("cpu", "cuda")):
    settings_file(tmp_path, overrides={"demo": text})
    return load_package_settings(tmp_path / "conf" / "overrides", "demo", declared)


def package_error(tmp_path: Path, text: str, declared=("cpu", "cuda")) -> str:
    with pytest.raises(SettingsError) as excinfo:
        package(tmp_path, text, declared)
    return str(excinfo.value)


# -- settings.yaml's variants: -------------------------------------------------------------------
def test_without_variants_there_is_one_variant_cpu_and_it_is_the_default(tmp_path):
    settings = load_settings(settings_file(tmp_path, variants=None))
    assert settings.variant_names == ("cpu",)
    assert settings.variant == "cpu"


def test_variants_keep_their_order_and_the_first_is_the_default(tmp_path):
    settings = load_settings(settings_file(tmp_path, variants=(
        "variants:\n  cu128:\n    description: CUDA 12.8\n  cpu: {}\n  rocm6.2: {}\n")))
    assert settings.variant_names == ("cu128", "cpu", "rocm6.2")
    assert settings.variant == "cu128"
    assert settings.variants[0].description == "CUDA 12.8"
    assert settings.for_variant("rocm6.2").variant == "rocm6.2"
    assert settings.for_variant(None).variant == "cu128"


@pytest.mark.parametrize("name", ["CUDA", "-cpu", "a/b", "..", ".hidden", "cu 12", ""])
def test_a_variant_name_that_is_no_folder_name_is_refused_naming_file_line_and_key(tmp_path, name):
    path = settings_file(tmp_path, variants=f"upstream: {{}}\nvariants:\n  {json.dumps(name)}: {{}}\n")
    message = settings_error(path)
    assert message.startswith(f"{path}:3: variants.{name}: ")
    assert "is not a variant name: lower-case letters, digits and . _ -" in message


@pytest.mark.parametrize("key", ["true", "12", "null"])
def test_a_variant_name_yaml_reads_as_no_string_is_refused(tmp_path, key):
    message = settings_error(settings_file(tmp_path, variants=f"variants:\n  {key}: {{}}\n"))
    assert "is not a variant name" in message and "settings.yaml" in message


@pytest.mark.parametrize("text, key, problem", [
    ("variants: {}\n", "variants", "expected a non-empty mapping"),
    ("variants: [cpu, cuda]\n", "variants", "expected a non-empty mapping"),
    ("variants:\n  cpu: {gpu: true}\n", "variants.cpu.gpu", "unknown key (allowed here: description)"),
    ("variants:\n  cpu: {description: 3}\n", "variants.cpu.description", "expected str, got 3"),
])
def test_a_malformed_variants_mapping_names_the_key(tmp_path, text, key, problem):
    message = settings_error(settings_file(tmp_path, variants=text))
    assert f": {key}: {problem}" in message


def test_an_undeclared_variant_is_refused_listing_the_declared_ones(tmp_path):
    path = settings_file(tmp_path)
    with pytest.raises(SettingsError, match=rf"^unknown variant 'rocm'; {path} declares: cpu, cuda$"):
        load_settings(path).for_variant("rocm")


def test_the_shipped_settings_declare_cpu_first_then_cuda():
    assert load_settings(REPO / "settings.yaml").variant_names == ("cpu", "cuda")


# -- a package's delta per variant -------------------------------------------------------------
DELTA = """\
    env: {OPT: "2", SHARED: "yes"}
    system_packages: [libfoo-dev]
    config_settings: {--build-option: --fast}
    variants:
      cuda:
        env: {OPT: "3", USE_CUDA: "1"}
        system_packages: [nvidia-cuda-toolkit, libfoo-dev]
        config_settings: {--gpu: "on"}
"""


def test_a_variant_merges_env_and_config_settings_and_adds_system_packages(tmp_path):
    cuda = package(tmp_path, DELTA).for_variant("cuda")
    assert cuda.env == {"OPT": "3", "SHARED": "yes", "USE_CUDA": "1"}
    assert cuda.config_settings == {"--build-option": "--fast", "--gpu": "on"}
    assert cuda.system_packages == ("libfoo-dev", "nvidia-cuda-toolkit")


def test_a_variant_replaces_source_and_pre_built(tmp_path):
    own = package(tmp_path, """\
        source: {git: https://example.org/demo.git, tag: "v${version}"}
        variants:
          cuda:
            source: {url: "https://example.org/demo-cuda-${version}.tar.gz", sha256: %s}
          cpu:
            pre_built: true
        """ % ("a" * 64))
    assert own.for_variant("cuda").source.url == "https://example.org/demo-cuda-${version}.tar.gz"
    assert own.for_variant("cuda").source.git is None and not own.for_variant("cuda").pre_built
    assert own.for_variant("cpu").pre_built and own.for_variant("cpu").source.git


def test_a_variants_build_requires_are_added_and_undo_the_packages_own_opposite(tmp_path):
    cuda = package(tmp_path, """\
        build_requires: {add: [cython, numpy], remove: [cmake, ninja]}
        variants:
          cuda:
            build_requires: {add: [cmake, "pybind11>=2"], remove: [cython]}
        """).for_variant("cuda")
    assert cuda.build_requires_add == ("numpy", "cmake", "pybind11>=2")
    assert cuda.build_requires_remove == ("ninja", "cython")


def test_a_package_without_a_delta_has_the_same_settings_and_build_key_in_every_variant(tmp_path):
    own = package(tmp_path, 'env: {OPT: "2"}\nsystem_packages: [libfoo-dev]\n')
    cpu, cuda = own.for_variant("cpu"), own.for_variant("cuda")
    assert cpu.as_dict() == cuda.as_dict() == own.as_dict()
    assert cpu.digest() == cuda.digest()
    assert not overrides_changed(as_json(cpu.as_dict()), cuda)
    assert not built_per_variant(own, ("cpu", "cuda"))


def test_a_delta_for_one_variant_leaves_the_others_as_the_package_is(tmp_path):
    own = package(tmp_path, DELTA)
    assert own.for_variant("cpu").as_dict() == own.as_dict()
    assert overrides_changed(as_json(own.for_variant("cpu").as_dict()), own.for_variant("cuda"))
    assert built_per_variant(own, ("cpu", "cuda"))
    assert "variants" not in own.as_dict() and "variants" not in own.for_variant("cuda").as_dict()
    assert "variants" in own.configured()


def test_a_delta_that_changes_nothing_is_not_built_per_variant(tmp_path):
    own = package(tmp_path, 'env: {OPT: "2"}\nvariants:\n  cuda:\n    env: {OPT: "2"}\n')
    assert not built_per_variant(own, ("cpu", "cuda"))


def test_a_delta_for_a_variant_settings_do_not_declare_names_the_file_and_key(tmp_path):
    message = package_error(tmp_path, 'variants:\n  rocm:\n    env: {A: "1"}\n')
    path = tmp_path / "conf" / "overrides" / "demo.yaml"
    assert message == (f"{path}:2: variants.rocm: settings.yaml declares no variant 'rocm' "
                       f"(declared: cpu, cuda)")


def test_a_key_a_variant_may_not_set_is_an_error(tmp_path):
    message = package_error(tmp_path, "variants:\n  cuda:\n    timeout: 60\n")
    assert "demo.yaml:3: variants.cuda.timeout: unknown key (allowed here: build_requires, " \
           "config_settings, env, pre_built, source, system_packages)" in message


@pytest.mark.parametrize("body, where", [
    ("    system_packages: [Not A Package]\n", "4: variants.cuda.system_packages: "),
    ("    env: {A: \"${nope}\"}\n", "4: variants.cuda.env.A: unknown template"),
    ("    source: {url: https://x/y.tar.gz}\n", "4: variants.cuda.source: a source url needs sha256"),
    ("    build_requires: {add: [\"not a requirement!\"]}\n", "4: variants.cuda.build_requires.add: "),
    ("    pre_built: yes please\n", "4: variants.cuda.pre_built: expected bool"),
])
def test_a_bad_value_in_a_variant_names_its_whole_key_path_and_line(tmp_path, body, where):
    message = package_error(tmp_path, "env: {}\nvariants:\n  cuda:\n" + body)
    assert f"demo.yaml:{where}" in message


def test_effective_settings_follow_the_variant_the_settings_work_on(tmp_path):
    settings = load_settings(settings_file(tmp_path, overrides={"demo": DELTA}))
    assert package_settings_for(settings, "demo").env == {"OPT": "2", "SHARED": "yes"}
    assert package_settings_for(settings.for_variant("cuda"), "Demo").env["USE_CUDA"] == "1"


def test_the_shipped_torch_override_builds_cpu_and_cuda_differently():
    settings = load_settings(REPO / "settings.yaml")
    cpu = package_settings_for(settings, "torch")
    cuda = package_settings_for(settings.for_variant("cuda"), "torch")
    assert (cpu.env["USE_CUDA"], cuda.env["USE_CUDA"]) == ("0", "1")
    assert "nvidia-cuda-toolkit" in cuda.system_packages
    assert "nvidia-cuda-toolkit" not in cpu.system_packages
    assert cpu.source == cuda.source  # the same tarball
    assert delta_as_dict(load_package_settings(settings.overrides_dir, "torch").variants["cpu"]) \
        == {"env": {"USE_CUDA": "0"}}


# -- a variant's own plugin ----------------------------------------------------------------------
PLUGIN = """\
from mirror_builder.config.plugins import BuildContext


def build_environment(context: BuildContext) -> dict[str, str]:
    return {"FROM": %r}
"""


def test_a_variants_own_plugin_replaces_the_packages_in_that_variant_only(tmp_path):
    overrides = tmp_path / "overrides"
    (overrides / "variants" / "cuda").mkdir(parents=True)
    (overrides / "demo_pkg.py").write_text(PLUGIN % "base")
    (overrides / "variants" / "cuda" / "demo_pkg.py").write_text(PLUGIN % "cuda")
    (overrides / "variants" / "cuda" / "other.py").write_text(PLUGIN % "other")

    assert load_plugins(overrides)["demo-pkg"].origin == str(overrides / "demo_pkg.py")
    assert load_plugins(overrides, "cpu")["demo-pkg"].origin == str(overrides / "demo_pkg.py")
    cuda = load_plugins(overrides, "cuda")
    assert cuda["demo-pkg"].origin == str(overrides / "variants" / "cuda" / "demo_pkg.py")
    assert cuda["demo-pkg"].call("build_environment", None) == {"FROM": "cuda"}
    assert "other" in cuda and "other" not in load_plugins(overrides, "cpu")
    assert variant_plugin_names(overrides, ("cpu", "cuda")) == {"demo-pkg", "other"}


def test_the_run_catalog_holds_the_variants_settings_and_plugins(tmp_path):
    path = settings_file(tmp_path, overrides={"demo": DELTA})
    cuda_plugins = tmp_path / "conf" / "overrides" / "variants" / "cuda"
    cuda_plugins.mkdir(parents=True)
    (cuda_plugins / "demo.py").write_text(PLUGIN % "cuda")
    cpu = Catalog(load_settings(path))
    cuda = Catalog(load_settings(path).for_variant("cuda"))
    assert "USE_CUDA" not in cpu.package("demo").env and cuda.package("demo").env["USE_CUDA"] == "1"
    assert cpu.plugin_record("demo") is None
    assert cuda.plugin_record("demo")["origin"] == str(cuda_plugins / "demo.py")


def test_configured_marks_what_is_built_per_variant_and_gives_the_variants_delta(tmp_path):
    path = settings_file(tmp_path, overrides={"demo": DELTA, "plain": 'env: {A: "1"}\n'})
    (tmp_path / "conf" / "overrides" / "variants" / "cpu").mkdir(parents=True)
    (tmp_path / "conf" / "overrides" / "variants" / "cpu" / "plugged.py").write_text(PLUGIN % "x")
    found = configured(load_settings(path).for_variant("cuda"))
    assert (found["demo"].per_variant, found["plain"].per_variant) == (True, False)
    assert found["demo"].settings.env["USE_CUDA"] == "1"
    assert found["demo"].delta.describe() == ("env OPT=3, USE_CUDA=1; config_settings "
                                              "--gpu=on; system_packages +nvidia-cuda-toolkit "
                                              "+libfoo-dev")
    assert found["plain"].delta is None
    assert found["plugged"].per_variant  # its own plugin in cpu: not the same build in cuda


def test_lint_names_a_folder_of_plugins_for_a_variant_not_declared(tmp_path):
    class NoUpstream:
        def project_files(self, name):
            return []

    path = settings_file(tmp_path)
    (tmp_path / "conf" / "overrides" / "variants" / "rocm").mkdir(parents=True)
    folder = tmp_path / "conf" / "overrides" / "variants" / "rocm"
    assert Finding(str(folder), "settings.yaml declares no variant 'rocm' (declared: cpu, cuda); "
                                "its plugins are never used") in lint(load_settings(path),
                                                                      NoUpstream())


# -- where a variant's output is ---------------------------------------------------------------
def test_the_default_variants_output_is_output_itself_and_the_others_are_under_variants():
    output = Path("/srv/out")
    assert variant_output(output, "cpu", "cpu") == output
    assert variant_output(output, "cuda", "cpu") == output / "variants" / "cuda"
    assert OutputLayout(output).variants == output / "variants"


def test_a_writer_of_the_default_output_leaves_the_other_variants_files_alone(tmp_path):
    """Each variant's output has its own lock: the default's writer must not sweep another
    variant's half-written files as leftovers of its own."""
    cuda = variant_output(tmp_path, "cuda", "cpu")
    (cuda / "files" / "demo").mkdir(parents=True)
    writing = cuda / "files" / "demo" / ".demo-1.0.whl.x1.part"
    writing.write_text("being written by the cuda run")
    (tmp_path / "files").mkdir()
    mine = tmp_path / "files" / ".old.part"
    mine.write_text("a killed writer's")
    with hold_output(tmp_path, "bootstrap six"):
        pass
    assert writing.exists() and not mine.exists()


# -- the build record ----------------------------------------------------------------------------
def test_a_record_names_its_variant_the_schema_requires_it_and_inspect_shows_it():
    record = as_json(make_record(variant="cuda", target={
        "name": "bookworm-x86_64", "platform_python_implementation": "CPython",
        "python_full_version": "3.11.2", "sys_platform": "linux",
        "platform_machine": "x86_64"}).to_dict("a" * 64))
    jsonschema.Draft202012Validator(SCHEMA).validate(record)
    assert "variant" in SCHEMA["required"]
    without = {k: v for k, v in record.items() if k != "variant"}
    with pytest.raises(jsonschema.ValidationError, match="'variant' is a required property"):
        jsonschema.Draft202012Validator(SCHEMA).validate(without)
    console = Console(record=True, width=200)
    render_records(console, "six 1.16.0", [record])
    assert any(line.strip("│ ").split()[:2] == ["variant", "cuda"]
               for line in console.export_text().splitlines())


# -- the command line ----------------------------------------------------------------------------
def mirror_builder_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirror_builder", *args], cwd=cwd,
                          capture_output=True, text=True, env=clean_environment())


def options_of(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._subparsers._group_actions)  # the commands
    return {o for action in sub.choices[command]._actions for o in action.option_strings}


@pytest.mark.parametrize("command", ["bootstrap", "plan", "rebuild", "update", "review", "inspect",
                                     "verify-wheel", "history", "yank", "index", "overrides"])
def test_the_commands_that_build_plan_or_read_an_output_take_a_variant(command):
    assert "--variant" in options_of(command)


@pytest.mark.parametrize("command", ["serve", "nginx-config"])
def test_serve_and_nginx_config_publish_every_variant_side_by_side(command):
    assert "--variant" not in options_of(command) and "--output" in options_of(command)


@pytest.mark.parametrize("command", [["history"], ["inspect", "six==1.17.0"], ["plan", "six"],
                                     ["bootstrap", "six"]])
def test_an_unknown_variant_is_one_error_line_listing_the_declared_ones(tmp_path, command):
    proc = mirror_builder_cli("--settings", str(REPO / "settings.yaml"), *command,
                              "--variant", "rocm", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc.stderr) == [
        f"error: unknown variant 'rocm'; {REPO / 'settings.yaml'} declares: cpu, cuda"]
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


def test_a_variants_missing_output_is_refused_naming_the_bootstrap_that_makes_it(tmp_path):
    (tmp_path / "out" / "simple").mkdir(parents=True)
    proc = mirror_builder_cli("--settings", str(REPO / "settings.yaml"), "history", "-o", "out",
                              "--variant", "cuda", cwd=tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [
        f"error: {tmp_path / 'out' / 'variants' / 'cuda'}: no such output directory "
        f"(bootstrap --variant cuda creates one)"]


def test_plan_marks_what_is_built_per_variant_and_shows_its_delta_in_the_variant(tmp_path,
                                                                                 plan_settings):
    (tmp_path / "overrides" / "tool.yaml").write_text(
        'env: {A: "1"}\nvariants:\n  cuda:\n    env: {GPU: "on"}\n')
    shown = mirror_builder_cli("--settings", str(plan_settings), "plan", "app==1.0",
                               "--variant", "cuda", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = {line.split("│")[2].strip(): line.split("│")[-2].strip()
            for line in shown.stdout.splitlines() if line.count("│") > 7}
    assert rows == {"tool": "per variant", "app": "shared"}
    (header,) = [line for line in shown.stdout.splitlines() if "┃ package" in line]
    assert header.split("┃")[-2].strip() == "variants"
    assert "plan for app==1.0 on bookworm-x86_64, variant cuda: 2 packages" in shown.stdout
    assert "built per variant tool==1.0; in cuda: env GPU=on" in shown.stdout

    planned = mirror_builder_cli("--settings", str(plan_settings), "plan", "app==1.0", "--json",
                                 "--variant", "cpu", cwd=tmp_path)
    assert [(p["name"], p["variant"], p["per_variant"], p["variant_overrides"])
            for p in json.loads(planned.stdout)] == [("tool", "cpu", True, {}),
                                                     ("app", "cpu", False, {})]
