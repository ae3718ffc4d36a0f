"""End-to-end: serve's web view in a real browser. A real output (a build that failed, stevedore
and its tree, a yank, a verification) is served, Debian's headless Chromium loads the pages,
and the rendered DOM shows the projects, versions, build records, the failure, the
verification and the dependency graph; a screenshot is kept in the test's folder."""

import json
import shutil
import subprocess

import pytest

from conftest import FIXTURES, STEVEDORE, make_sdist, run_mirror_builder

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium")


def browse(url: str, screenshot=None) -> str:
    """The DOM Chromium rendered for url (and a screenshot, if asked)."""
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1800"]
    if screenshot is not None:
        subprocess.run([CHROMIUM, *flags, f"--screenshot={screenshot}", url],
                       capture_output=True, timeout=60, check=True)
    return subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True,
                          timeout=60, check=True).stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    work = tmp_path_factory.mktemp("web")
    broken = make_sdist(FIXTURES / "needheader", work / "dist", "needheader", "1.0")
    failed = run_mirror_builder("bootstrap", str(broken), "--keep-going", "-o", "out", cwd=work,
                                check=False)
    assert failed.returncode != 0  # zmq.h is not in the image: a real failed build
    run_mirror_builder("bootstrap", f"stevedore=={STEVEDORE}", "-o", "out", cwd=work)
    run_mirror_builder("yank", f"stevedore=={STEVEDORE}", "--reason", "just testing", "-o", "out",
                       cwd=work)
    run_mirror_builder("verify", f"stevedore=={STEVEDORE}", "-o", "out", cwd=work)
    return work / "out"


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (./setup.sh installs it)")
def test_a_browser_sees_the_projects_the_failure_and_each_build(site, served, tmp_path):
    base, _ = served(site)
    home = browse(f"{base}/", tmp_path / "home.png")
    assert 'href="/project/stevedore/"' in home and STEVEDORE in home
    assert "needheader==1.0" in home  # the failed build of the last runs
    assert (tmp_path / "home.png").stat().st_size > 10_000

    page = browse(f"{base}/project/stevedore/", tmp_path / "stevedore.png")
    record = json.loads(next((site / "records" / "stevedore").glob("*.build.json")).read_text())
    for shown in (f"stevedore {STEVEDORE}", record["wheel"], record["source"]["sha256"],
                  record["image"]["id"], "yanked: just testing", "PASSED", "build record of",
                  "SBOM"):
        assert shown in page, shown
    assert "<svg" in page and f"stevedore=={STEVEDORE}" in page  # the graph, drawn by dot
    assert (tmp_path / "stevedore.png").stat().st_size > 10_000
    print(f"screenshots: {tmp_path / 'home.png'}, {tmp_path / 'stevedore.png'}")
