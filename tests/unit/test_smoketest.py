"""Which modules a smoke test imports: what the wheel really holds, as a user would import it."""

import time
import zipfile

from mirror_builder.sandbox.toplevel import top_level_modules


def wheel_with(tmp_path, members, top_level=None):
    path = tmp_path / "demo-1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member in members:
            archive.writestr(member, "")
        if top_level is not None:
            archive.writestr("demo-1.0.dist-info/top_level.txt", "\n".join(top_level) + "\n")
        archive.writestr("demo-1.0.dist-info/METADATA", "Name: demo\n")
    return path


def test_packages_modules_and_extensions_at_the_top_of_the_tree_are_imported(tmp_path):
    wheel = wheel_with(tmp_path, ["demo/__init__.py", "helper.py",
                                  "_speedups.cpython-311-x86_64-linux-gnu.so",
                                  "demo-1.0.data/scripts/tool"])
    assert top_level_modules(wheel) == ("demo", "helper")


def test_private_modules_are_imported_only_when_the_wheel_has_nothing_public(tmp_path):
    # PyYAML ships a _yaml shim that fails without its optional C extension; yaml is the API.
    assert top_level_modules(wheel_with(tmp_path, ["yaml/__init__.py", "_yaml/__init__.py"])) == ("yaml",)
    lone = tmp_path / "lone"
    lone.mkdir()
    assert top_level_modules(wheel_with(lone, ["_cffi_backend.cpython-311-x86_64-linux-gnu.so"])) \
        == ("_cffi_backend",)


def test_top_level_txt_narrows_the_tree_but_cannot_add_what_is_not_there(tmp_path):
    # PyYAML built without libyaml declares _yaml but ships only yaml/.
    wheel = wheel_with(tmp_path, ["yaml/__init__.py", "extra/__init__.py"], top_level=["_yaml", "yaml"])
    assert top_level_modules(wheel) == ("yaml",)


def test_a_project_s_own_tests_and_docs_are_not_imported(tmp_path):
    wheel = wheel_with(tmp_path, ["demo/__init__.py", "tests/__init__.py", "docs/conf.py"])
    assert top_level_modules(wheel) == ("demo",)


def probe(tmp_path, files, *modules):
    """Run the smoke test's import probe over modules, with files on the path."""
    import json
    import subprocess
    import sys

    from mirror_builder.sandbox.smokerun import IMPORT_PROBE, undeclared_imports

    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    done = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *modules], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    line = next(l for l in done.stdout.splitlines() if l.startswith("MB-IMPORTS "))
    return undeclared_imports(json.loads(line[len("MB-IMPORTS "):]))


def test_importing_a_project_the_wheel_does_not_declare_is_not_a_failure(tmp_path):
    readable, broken = probe(tmp_path, {"soupish/__init__.py": "import bs4_not_here\n"},
                             "soupish")
    assert broken == {}
    assert readable["soupish"] == ("not fully tested: it imports bs4_not_here, which the wheel "
                                   "does not declare as a requirement")


def test_a_missing_module_of_the_wheel_s_own_package_is_a_failure(tmp_path):
    readable, broken = probe(tmp_path, {"yamlish/__init__.py": "from yamlish import _ext\n"},
                             "yamlish")
    assert "No module named" in broken["yamlish"] or "cannot import name" in broken["yamlish"]


def test_any_other_import_error_is_a_failure(tmp_path):
    _, broken = probe(tmp_path, {"boom.py": "raise RuntimeError('compiled for another ABI')\n"},
                      "boom")
    assert broken == {"boom": "RuntimeError: compiled for another ABI"}


def test_a_missing_undeclared_project_re_raised_with_a_message_is_not_a_failure(tmp_path):
    extension = ("try:\n    import server_not_here\nexcept ModuleNotFoundError as exc:\n"
                 "    raise ModuleNotFoundError('Server must be installed to use this') from exc\n")
    readable, broken = probe(tmp_path, {"terminals_ext/__init__.py": extension}, "terminals_ext")
    assert broken == {}
    assert "it imports server_not_here" in readable["terminals_ext"]


def test_the_probe_ends_with_its_results_even_if_an_import_left_a_thread_running(tmp_path):
    # A non-daemon thread would hold an ordinary interpreter exit until the test's timeout.
    server = "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n"
    began = time.monotonic()

    readable, broken = probe(tmp_path, {"serverish.py": server}, "serverish")

    assert broken == {} and readable == {"serverish": None}
    assert time.monotonic() - began < 30


def test_the_libraries_folder_auditwheel_adds_is_not_imported(tmp_path):
    wheel = tmp_path / "pyzmq-27.3.0-cp311-cp311-manylinux_2_35_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("zmq/__init__.py", "")
        zf.writestr("pyzmq.libs/libzmq-1a2b3c.so.5.2.5", b"\x7fELF")
        zf.writestr("pyzmq-27.3.0.dist-info/METADATA", "Name: pyzmq\n")
    assert top_level_modules(wheel) == ("zmq",)


def test_a_test_whose_venv_folder_an_earlier_import_took_fails_alone(tmp_path, monkeypatch):
    # Tests run side by side in one container: one package's import could plant files where
    # the next test makes its venv. That test fails, with why; the others go on.
    import os
    import sys

    from mirror_builder.sandbox import smokerun, venvs

    monkeypatch.setitem(sys.modules, "mb_venvs", venvs)
    monkeypatch.setattr(venvs, "PYTHON", os.path.realpath(sys.executable))
    (tmp_path / "smoke-3").mkdir()
    (tmp_path / "smoke-3" / "pyvenv.cfg").write_text("home = /planted\n")

    result, output = smokerun.smoke_one([], 3, str(tmp_path / "demo.whl"), ["demo"], {}, {},
                                        parent=str(tmp_path))

    assert result["status"] == "failed"
    assert result["error"].startswith("its venv could not be made: FileExistsError")
