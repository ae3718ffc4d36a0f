"""Runs INSIDE a build container, beside the driver (copied in as /mb/lib/mb_linked.py; stdlib
only, never imported on the host): which Debian packages a built wheel's ELF files link to.

What a wheel needs from the system is only known after it is built, and only the image knows
where each library came from; so the driver asks here, at the end of the build, with the image's
own readelf, ldconfig and dpkg (by absolute path: the build's venv is first on PATH).
"""

import os
import re
import shutil
import subprocess
import tempfile
import zipfile
ELF_MAGIC = b"\x7fELF"
NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")


def linked_packages(wheel):
    """The shared libraries the wheel's ELF files need (DT_NEEDED) that this image has, and
    the Debian package each comes from: [{soname, path, package, version, architecture,
    distro}]; a library the image does not have (one the wheel carries itself) is left out.
    Read here, where the image's dynamic linker cache and dpkg database are, for the SBOM."""
    needed = set()
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory() as tmp:
        for number, info in enumerate(archive.infolist()):
            with archive.open(info) as member:
                if member.read(4) != ELF_MAGIC:
                    continue
            path = os.path.join(tmp, str(number))
            with archive.open(info) as member, open(path, "wb") as out:
                shutil.copyfileobj(member, out)
            dynamic = subprocess.run(["/usr/bin/readelf", "-d", "-W", path], check=True,
                                     stdout=subprocess.PIPE, text=True).stdout
            needed.update(NEEDED.findall(dynamic))
    if not needed:
        return []
    known = _linker_cache()
    distro = _distro()
    found = []
    for soname in sorted(needed):
        path = known.get(soname)
        owner = _dpkg_owner(path) if path else None
        if owner is None:
            continue
        package, architecture = owner
        version = subprocess.run(["/usr/bin/dpkg-query", "-W", "-f", "${Version}", package],
                                 check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        found.append({"soname": soname, "path": path, "package": package.split(":")[0],
                      "version": version, "architecture": architecture, "distro": distro})
    return found


def _linker_cache():
    """soname -> path, from `ldconfig -p` (the image's /etc/ld.so.cache)."""
    listing = subprocess.run(["/sbin/ldconfig", "-p"], check=True, stdout=subprocess.PIPE,
                             text=True).stdout
    known = {}
    for line in listing.splitlines()[1:]:
        name, _, path = line.strip().partition(" => ")
        known.setdefault(name.split(" (")[0], path.strip())
    return known


def _dpkg_owner(path):
    """(package, architecture) that installed path, trying it as /lib and /usr/lib alike
    (Debian's merged /usr: dpkg knows one, the linker may say the other)."""
    real = os.path.realpath(path)
    tries = [path, real]
    tries += [p[4:] if p.startswith("/usr/") else "/usr" + p for p in (path, real)]
    for candidate in dict.fromkeys(tries):
        answer = subprocess.run(["/usr/bin/dpkg", "-S", candidate], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        if answer.returncode == 0 and answer.stdout.strip():
            owner = answer.stdout.splitlines()[0].split(": ")[0].split(",")[0].strip()
            name, _, arch = owner.partition(":")
            if not arch:
                arch = subprocess.run(["/usr/bin/dpkg", "--print-architecture"], check=True,
                                      stdout=subprocess.PIPE, text=True).stdout.strip()
            return name, arch
    return None


def _distro():
    """debian-12 and the like, from the image's os-release."""
    fields = {}
    try:
        with open("/etc/os-release") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                fields[key] = value.strip('"')
    except OSError:
        return ""
    return f"{fields.get('ID', '')}-{fields.get('VERSION_ID', '')}".strip("-")

