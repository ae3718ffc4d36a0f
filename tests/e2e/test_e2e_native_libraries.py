"""The long proof (marked slow) that the shipped overrides build packages which link Debian's
libraries out of the box: each bootstrapped from PyPI with real podman and no --manylinux (the
override asks for the repair), installed from our index into a fresh venv and used."""

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import clean_environment, fresh_venv, run_mirror_builder, wheel_sbom

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The newest release of each that builds here.
PYYAML = "6.0.4"
PSYCOPG2 = "2.9.13"
PILLOW = "13.0.0"
NUMPY = "2.4.6"  # 2.5 needs Python 3.12; bookworm has 3.11
SHAPELY = "2.2.0"


def bootstrap_repaired(tmp_path: Path, name: str, version: str, layer_package: str,
                       library: str) -> Path:
    """Bootstrap name==version into an output of its own; check that its wheel was built from
    source in a layer with layer_package, repaired to a manylinux tag because of the override
    (the run does not ask), and carries library in its .libs folder. Returns a fresh venv with
    the package installed from that output's index."""
    out = tmp_path / "out"
    run_mirror_builder("bootstrap", f"{name}=={version}", "-o", str(out), cwd=tmp_path)

    (wheel,) = (out / "files" / name).glob("*.whl")
    assert "manylinux" in wheel.name and wheel.name.endswith("_x86_64.whl"), wheel.name
    record = json.loads((out / "records" / name / f"{wheel.name}.build.json").read_text())
    assert record["built_from_source"] and record["sandbox"]["network"] == "none"
    assert layer_package in record["image"]["layer_packages"]
    repair = record["repair"]
    assert repair["tool"].startswith("auditwheel ")
    assert repair["from"].endswith("-linux_x86_64.whl") and repair["to"] == wheel.name
    with zipfile.ZipFile(wheel) as zf:
        grafted = [n.split("/", 1)[1] for n in zf.namelist()
                   if n.split("/")[0].endswith(".libs") and not n.endswith("/")]
    assert any(n.startswith(library) for n in grafted), grafted
    assert repair["bundled"] == sorted(grafted)  # the record names exactly what the wheel carries
    # Its SBOM names the Debian package of every library auditwheel copied in.
    copied = {p["value"].rsplit(" as ", 1)[1]: c["purl"] for c in wheel_sbom(wheel)["components"]
              for p in c.get("properties", []) if "copied into the wheel" in p["value"]}
    assert sorted(copied) == sorted(n.rsplit("/", 1)[-1] for n in grafted)
    assert all(purl.startswith("pkg:deb/debian/") for purl in copied.values()), copied

    venv = fresh_venv(tmp_path / "venv")
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                    (out / "simple").as_uri(), "--only-binary", ":all:", f"{name}=={version}"],
                   check=True, env=clean_environment(), capture_output=True)
    return venv


def run_in(venv: Path, code: str, tmp_path: Path) -> str:
    """Run code with the venv's Python outside the source tree; its stdout."""
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path,
                          env=clean_environment(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_pyyaml_builds_its_libyaml_extension_and_cloader_loads_documents(tmp_path):
    venv = bootstrap_repaired(tmp_path, "pyyaml", PYYAML, "libyaml-dev", "libyaml")

    printed = run_in(venv, """
import yaml
from yaml import _yaml
assert yaml.__with_libyaml__
document = yaml.load("a: [1, 2.5, true]\\nb: {c: null}\\n", Loader=yaml.CLoader)
assert document == {"a": [1, 2.5, True], "b": {"c": None}}, document
text = yaml.dump(document, Dumper=yaml.CDumper)
assert yaml.load(text, Loader=yaml.CSafeLoader) == document
assert issubclass(yaml.CLoader, _yaml.CParser)
print(_yaml.__file__, _yaml.get_version_string())
""", tmp_path)
    extension, libyaml = printed.split()
    assert extension.endswith(".so") and libyaml.startswith("0.2.")  # C code, bookworm's libyaml


def test_psycopg2_builds_against_debian_libpq_and_reports_its_version(tmp_path):
    venv = bootstrap_repaired(tmp_path, "psycopg2", PSYCOPG2, "libpq-dev", "libpq")

    printed = run_in(venv, """
import psycopg2, psycopg2.extensions
print(psycopg2.extensions.libpq_version(), psycopg2.__libpq_version__)
try:
    psycopg2.connect("host=/nonexistent-socket-dir dbname=x connect_timeout=2")
except psycopg2.OperationalError as exc:
    print("refused:", exc)
else:
    raise AssertionError("connected to nothing")
""", tmp_path)
    versions, refused = printed.split("\n", 1)
    runtime, built = (int(v) for v in versions.split())
    assert runtime >= 150000 and built >= 150000  # bookworm's libpq 15
    assert "refused:" in refused and "/nonexistent-socket-dir" in refused  # libpq itself answered


def test_pillow_builds_with_jpeg_zlib_and_freetype_and_renders_text_to_a_jpeg(tmp_path):
    venv = bootstrap_repaired(tmp_path, "pillow", PILLOW, "libjpeg62-turbo-dev", "libjpeg")

    printed = run_in(venv, f"""
from PIL import Image, ImageDraw, ImageFont, features
assert features.check("jpg") and features.check("zlib") and features.check("freetype2")
image = Image.new("RGB", (200, 80), "white")
font = ImageFont.load_default(size=32)  # Pillow's own TrueType font, rendered by FreeType
assert isinstance(font, ImageFont.FreeTypeFont), type(font)
ImageDraw.Draw(image).text((10, 20), "Hello", fill="black", font=font)
image.save({str(tmp_path / 'text.jpg')!r}, quality=90)
image.save({str(tmp_path / 'text.png')!r})
with Image.open({str(tmp_path / 'text.jpg')!r}) as jpeg:
    assert (jpeg.format, jpeg.size) == ("JPEG", (200, 80))
    dark = sum(1 for pixel in jpeg.convert("L").getdata() if pixel < 100)
with Image.open({str(tmp_path / 'text.png')!r}) as png:
    assert png.format == "PNG" and png.tobytes() == image.tobytes()
print(dark, features.version("freetype2"), features.version("jpg"))
""", tmp_path)
    dark, freetype, jpeg = printed.split()
    assert int(dark) > 100  # the text is there
    assert freetype.startswith("2.") and jpeg


def test_numpy_builds_against_debian_openblas_and_solves_a_linear_system_with_it(tmp_path):
    venv = bootstrap_repaired(tmp_path, "numpy", NUMPY, "libopenblas-dev", "libopenblas")

    printed = run_in(venv, """
import numpy as np
dependencies = np.show_config(mode="dicts")["Build Dependencies"]
assert dependencies["blas"]["name"] == "openblas", dependencies["blas"]
assert dependencies["lapack"]["name"] == "openblas", dependencies["lapack"]
a = np.array([[3.0, 1.0, 2.0], [1.0, 4.0, 1.0], [2.0, 1.0, 5.0]])
x = np.linalg.solve(a, np.array([11.0, 12.0, 19.0]))  # LAPACK's dgesv
assert np.allclose(x, [1.0, 2.0, 3.0]), x
rng = np.random.default_rng(17)
m, n = rng.random((300, 200)), rng.random((200, 100))
product = m @ n  # BLAS's dgemm
assert np.allclose(product, (m[:, :, None] * n[None, :, :]).sum(axis=1))  # no BLAS on this path
assert np.allclose(np.linalg.inv(a) @ a, np.eye(3))
with open("/proc/self/maps") as maps:
    loaded = sorted({line.split()[-1] for line in maps if "libopenblas" in line})
print(dependencies["blas"]["version"], *loaded)
""", tmp_path)
    version, *loaded = printed.split()
    assert version.startswith("0.3.")  # bookworm's OpenBLAS 0.3.21
    # The OpenBLAS in use is the one the wheel carries, not one found on this machine.
    assert len(loaded) == 1 and "/numpy.libs/libopenblas" in loaded[0], loaded


def test_shapely_builds_against_debian_geos_and_computes_areas_and_intersections(tmp_path):
    venv = bootstrap_repaired(tmp_path, "shapely", SHAPELY, "libgeos-dev", "libgeos_c")

    printed = run_in(venv, """
import math
import shapely
from shapely.geometry import Point, Polygon, box
disc = Point(0, 0).buffer(1.0, quad_segs=64)
assert abs(disc.area - math.pi) < 1e-3, disc.area
overlap = box(0, 0, 2, 2).intersection(box(1, 1, 3, 3))
assert overlap.equals(box(1, 1, 2, 2)) and overlap.area == 1.0, overlap.wkt
triangle = Polygon([(0, 0), (4, 0), (0, 3)])
assert triangle.length == 12.0 and triangle.contains(Point(1, 1))
assert not triangle.contains(Point(3, 3))
areas = shapely.area(shapely.buffer(shapely.points([[0, 0], [10, 10]]), 2.0, quad_segs=64))
assert all(abs(area - 4 * math.pi) < 4e-3 for area in areas), areas
with open("/proc/self/maps") as maps:
    loaded = sorted({line.split()[-1] for line in maps if "libgeos" in line})
print(shapely.geos_version_string, *loaded)
""", tmp_path)
    geos, *loaded = printed.split()
    assert geos.startswith("3.11.")  # bookworm's GEOS
    # The GEOS in use is the one the wheel carries (libgeos_c and the libgeos it links).
    assert loaded and all("/shapely.libs/libgeos" in path for path in loaded), loaded
