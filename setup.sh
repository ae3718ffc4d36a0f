#!/usr/bin/env bash
# Install everything mirror-builder needs on a fresh Debian 12 machine (as root): podman and the
# tools that make images, the package itself in .venv, and the build image. Then run the main job:
# bootstrap a small real package from source and install it from the resulting index.
#
#   ./setup.sh              install, build the image, bootstrap stevedore into ./output
#   ./setup.sh --no-demo    install and build the image only (what ./run-tests uses)
set -euo pipefail
cd "$(dirname "$0")"

demo=1
[[ "${1:-}" == "--no-demo" ]] && demo=0

# System packages: podman (driven through its API service), crun and runc (crun starts a
# container sooner, where the cgroup layout lets it; see below), mmdebstrap (base images come from Debian's packages: no registry is
# reachable), patch (applies patches/), uidmap (podman's user namespace helpers), nginx and
# openssl (the production recipe's web server, which the tests run on loopback with a
# certificate they make; Debian may start its default site on port 80 as it installs nginx, which
# the tests never use: each runs its own nginx with its own configuration), graphviz (serve's
# web view draws each project's dependency graph with dot) and chromium (the tests load those
# pages in a real headless browser).
packages=(podman crun runc mmdebstrap uidmap patch ca-certificates nginx openssl graphviz chromium)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
# Install those of the given Debian packages that are not installed yet.
install_missing() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "setup: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
install_missing "${packages[@]}"

# crun refuses a hybrid cgroup layout whose cgroup2 hierarchy holds a controller ("cgroups in
# hybrid mode not supported"; no cgroup_manager setting changes that). On this kind of machine
# that is hugetlb alone, which nothing uses there: it moves to a v1 hierarchy of its own, and
# mirror-builder takes crun whenever the layout allows (sandbox/podman.py: oci_runtime), runc
# otherwise (after a reboot, until this runs again).
if [[ -r /sys/fs/cgroup/unified/cgroup.controllers && ! -e /sys/fs/cgroup/cgroup.controllers ]]; then
    for controller in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
        { mkdir -p "/sys/fs/cgroup/$controller" &&
              mount -t cgroup -o "$controller" cgroup "/sys/fs/cgroup/$controller"; } 2>/dev/null ||
            echo "setup: could not give the $controller cgroup controller a v1 hierarchy; builds use runc"
    done
fi

# Containers run in user namespaces of their own: each one gets a block of the subordinate ids
# of the name "containers" (no login account is needed; sandbox/idleases.py), so uid
# 1000 or root in a build is an id no account on the host has. The range is podman's documented
# example, 2147483647 up to 4294967294: far above what useradd hands out to accounts or to their
# subordinate ids (SUB_UID_MAX is 600100000). A "containers" entry that exists is kept as it is.
SUBID_START=2147483647
SUBID_COUNT=2147483648
add_subid_range() {  # the subordinate id file, and the database whose ids it must not overlap
    local file=$1 db=$2 clash
    touch "$file"
    grep -q '^containers:' "$file" && return
    clash=$(awk -F: -v s="$SUBID_START" -v n="$SUBID_COUNT" \
                '!/^#/ && NF >= 3 && $2 < s + n && s < $2 + $3 { print $0 }' "$file"
            getent "$db" | awk -F: -v s="$SUBID_START" -v n="$SUBID_COUNT" -v db="$db" \
                '$3 >= s && $3 < s + n { print db " entry " $1 }')
    if [[ -n $clash ]]; then
        echo "setup: the id range $SUBID_START+$SUBID_COUNT for podman's user namespaces overlaps" \
             "$(tr '\n' ' ' <<<"$clash")in $file; add a free range for \"containers\" there by hand" >&2
        exit 1
    fi
    # A last line without its newline must not swallow ours.
    [[ -s $file && -n $(tail -c1 "$file") ]] && echo >>"$file"
    echo "containers:$SUBID_START:$SUBID_COUNT" >>"$file"
    echo "setup: added containers:$SUBID_START:$SUBID_COUNT to $file (ids for container user namespaces)"
}
add_subid_range /etc/subuid passwd
add_subid_range /etc/subgid group

# The package, in its own virtual environment (no system-wide pip installs).
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,cluster]'

# Targets for another architecture build under qemu user emulation: when settings.yaml has one,
# install qemu and register it with binfmt_misc (not mounted on a fresh machine).
if .venv/bin/python -c 'import sys; from mirror_builder.config.settings import load_settings, host_debian_arch
sys.exit(0 if any(t.arch != host_debian_arch() for t in load_settings().targets) else 1)'; then
    install_missing qemu-user-static binfmt-support
    if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
        # Only foreign targets need it; mirror-builder says so if they are used without it.
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
            echo "setup: could not mount binfmt_misc; foreign-architecture targets will not build"
    fi
    update-binfmts --enable >/dev/null 2>&1 || true
fi

# The build image of the default target: made once, reused until its Containerfile changes.
# (Other targets' images are made when first used, or by: mirror-builder images --target all.)
.venv/bin/mirror-builder images

# The key that signs build provenance (settings.yaml's signing.key), made once and then kept.
if [[ ! -e ~/.config/mirror-builder/signing.key ]]; then
    .venv/bin/mirror-builder keys generate
fi

if ((demo)); then
    .venv/bin/mirror-builder bootstrap stevedore==5.10.0 --output output
    rm -rf .venv-demo
    python3 -m venv .venv-demo
    env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL \
        .venv-demo/bin/pip install --quiet --no-cache-dir --disable-pip-version-check \
        --index-url "file://$PWD/output/simple" --only-binary :all: stevedore
    .venv-demo/bin/python -c 'import stevedore; print("stevedore", stevedore.__name__, "imports from our index")'
fi
