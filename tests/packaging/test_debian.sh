#!/bin/sh
# The Debian packages, end to end: builds them once from this tree
# (debian/, DEB_BUILD_OPTIONS=nocheck), runs lintian, makes a clean
# Debian 12 tree with mmdebstrap holding only what the packages depend
# on, installs them there and, inside it (debian_inside.sh, under chroot
# in new PID, mount and network namespaces), starts qanatd and an
# enrolled agent from the installed files and runs a workflow; then
# upgrades to a newer version (the same .debs repacked with a bumped
# version: no second compile) with the store kept and runs again.
# Ends with "N passed, N failed".  Skips, saying why, only when
# deb.debian.org cannot be reached.  Needs root (or sudo -n).
#   QANAT_DEB_DIR  work directory (default <build dir>/build-deb); the
#                  mmdebstrap tarball is cached there between runs
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${QANAT_BUILDDIR:-$SRC}
WORK=${QANAT_DEB_DIR:-$BUILD/build-deb}
MIRROR=${QANAT_DEB_MIRROR:-http://deb.debian.org/debian}
passed=0; failed=0
ok () { passed=$((passed + 1)); echo "ok - $1"; }
not_ok () { failed=$((failed + 1)); echo "not ok - $1"; }
finish () { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
started=$(date +%s)
# Seconds since the stage started (run in $(...), so no state to keep)
elapsed () { echo "(at $(( $(date +%s) - started )) s)"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null || { not_ok "root or sudo -n is needed (chroot, dpkg in the tree)"; finish; }
    SUDO="sudo -n"
fi
if ! /usr/bin/python3 - "$MIRROR" <<'PY'
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/dists/bookworm/Release", timeout=10).read(64)
PY
then
    echo "SKIP: $MIRROR cannot be reached: no Debian 12 tree can be made"
    finish
fi
for tool in dpkg-buildpackage lintian mmdebstrap; do
    command -v $tool >/dev/null || { not_ok "$tool is missing (packaging/install-deps.sh --tests)"; finish; }
done

# ---- 1. build once, from a copy of the source tree ----
# (QANAT_DEB_REUSE=1 keeps the last build's .debs: for work on this script)
$SUDO rm -rf "$WORK/root"
if [ "${QANAT_DEB_REUSE:-0}" = 1 ] && ls "$WORK"/v1/*.changes >/dev/null 2>&1; then
    rm -rf "$WORK/v2"; mkdir -p "$WORK/v2"
    ok "dpkg-buildpackage: the last build's packages reused"
else
    rm -rf "$WORK/src" "$WORK/v1" "$WORK/v2"
    mkdir -p "$WORK/src" "$WORK/v1" "$WORK/v2" "$WORK/cache"
    if [ -d "$SRC/.git" ] || [ -f "$SRC/.git" ]; then
        git -C "$SRC" ls-files -co --exclude-standard -z | (cd "$SRC" && xargs -0 tar -cf - --no-recursion --ignore-failed-read 2>/dev/null) \
            | tar -xf - -C "$WORK/src"
    else
        tar -C "$SRC" --exclude=./build-deb --exclude=./build-sanitizers -cf - . | tar -xf - -C "$WORK/src"
    fi
    if (cd "$WORK/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b \
            >"$WORK/build.log" 2>&1); then
        mv "$WORK"/*.deb "$WORK"/*.changes "$WORK"/*.buildinfo "$WORK/v1/"
        ok "dpkg-buildpackage -us -uc -b $(elapsed)"
    else
        tail -40 "$WORK/build.log"; not_ok "dpkg-buildpackage -us -uc -b"; finish
    fi
fi

# ---- 2. lintian: clean but for the overrides in debian/*.lintian-overrides ----
if lintian --fail-on error,warning "$WORK"/v1/*.changes >"$WORK/lintian.log" 2>&1; then
    ok "lintian $(elapsed)"
else
    cat "$WORK/lintian.log"; not_ok "lintian"
fi

# ---- 3. the newer version: the same files, repacked as VERSION+1 ----
repack_ok=true
for deb in "$WORK"/v1/*.deb; do
    case "$deb" in *-dbgsym_*) continue;; esac
    dir="$WORK/repack"; rm -rf "$dir"
    dpkg-deb -R "$deb" "$dir" || repack_ok=false
    old=$(sed -n 's/^Version: //p' "$dir/DEBIAN/control")
    sed -i -e "s/^Version: .*/Version: $old+1/" -e "s/(= $old)/(= $old+1)/g" "$dir/DEBIAN/control"
    dpkg-deb --root-owner-group -Zxz -b "$dir" "$WORK/v2/" >/dev/null || repack_ok=false
done
rm -rf "$WORK/repack"
$repack_ok && ok "repacked as a newer version $(elapsed)" || not_ok "repacked as a newer version"

# ---- 4. a clean Debian 12 tree: minbase, systemd, iproute2 and the
# packages' own dependencies (from their Depends, so that they, and not
# this machine, say what qanat needs at run time) ----
deps=$(for deb in "$WORK"/v1/*.deb; do case "$deb" in *-dbgsym_*|*/libqanat-dev_*) continue;; esac
        dpkg-deb -f "$deb" Depends; done | tr ',' '\n' | sed 's/[(|].*//; s/:any//; s/ //g' \
        | grep -v '^$' | grep -v -e '^libqanat' -e '^qanat' -e '-dev$' | sort -u | tr '\n' ',')
key=$(echo "$deps" | md5sum | cut -c1-12)
tarball="$WORK/cache/bookworm-$key.tar"
if [ ! -f "$tarball" ]; then
    rm -f "$WORK"/cache/bookworm-*.tar
    if $SUDO mmdebstrap --quiet --variant=minbase --include="systemd,iproute2,procps,${deps%,}" \
            bookworm "$WORK/cache/partial.tar" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1; then
        mv "$WORK/cache/partial.tar" "$tarball"
    else
        tail -20 "$WORK/mmdebstrap.log"; not_ok "mmdebstrap bookworm"; finish
    fi
fi
ROOT="$WORK/root"
$SUDO mkdir -p "$ROOT" && $SUDO tar -C "$ROOT" -xf "$tarball" \
    && $SUDO mkdir -p "$ROOT/qanat-test/v1" "$ROOT/qanat-test/v2" \
    && ok "a Debian 12 tree with mmdebstrap (${deps%,}) $(elapsed)" \
    || { not_ok "a Debian 12 tree"; finish; }

# ---- 4b. the agent's container root file system, as
# packaging/container/Containerfile makes it (no image builder here):
# Debian 12 minbase with systemd-standalone-sysusers and what qanat-agent
# depends on; debian_inside.sh makes its user with the Containerfile's
# own commands, installs the package and runs the agent in it (nested
# chroot at /ctr) ----
agent_deb=$(ls "$WORK"/v1/qanat-agent_*.deb)
ctr_deps=$(dpkg-deb -f "$agent_deb" Depends | tr ',' '\n' | sed 's/[(|].*//; s/ //g' \
        | grep -v -e '^$' -e '^systemd$' | sort -u | tr '\n' ',')
ctr_key=$(echo "$ctr_deps" | md5sum | cut -c1-12)
ctr_tarball="$WORK/cache/container-$ctr_key.tar"
if [ ! -f "$ctr_tarball" ]; then
    rm -f "$WORK"/cache/container-*.tar
    if $SUDO mmdebstrap --quiet --variant=minbase --include="systemd-standalone-sysusers,${ctr_deps%,}" \
            bookworm "$WORK/cache/partial.tar" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1; then
        mv "$WORK/cache/partial.tar" "$ctr_tarball"
    else
        tail -20 "$WORK/mmdebstrap.log"; not_ok "mmdebstrap the container's tree"
    fi
fi
if [ -f "$ctr_tarball" ]; then
    $SUDO mkdir -p "$ROOT/ctr" && $SUDO tar -C "$ROOT/ctr" -xf "$ctr_tarball" \
        && $SUDO cp "$agent_deb" "$ROOT/ctr/tmp/" \
        && $SUDO cp "$SRC/packaging/container/Containerfile" "$ROOT/qanat-test/Containerfile" \
        && ok "the container's tree with mmdebstrap (systemd-standalone-sysusers,${ctr_deps%,}) $(elapsed)" \
        || not_ok "the container's tree"
fi

# ---- 5. inside the tree: install, run, upgrade, run again ----
# libqanat-dev is for building against libqanat: it brings headers and
# a compiler's worth of -dev packages, so it is checked here, not installed
dev=$(ls "$WORK"/v1/libqanat-dev_*.deb)
headers=$(dpkg-deb -c "$dev" | awk '{print $6}' | sed -n 's|^\./usr/include/qanat/||p' | grep . | sort | tr '\n' ' ')
public=$( (cd "$SRC/include/qanat" && ls *.h; echo qanat.pb-c.h) | sort | tr '\n' ' ')
[ "$headers" = "$public" ] && ok "libqanat-dev holds the public headers only" \
    || not_ok "libqanat-dev's headers: $headers (public: $public)"

for v in v1 v2; do
    for deb in "$WORK/$v"/*.deb; do
        case "$deb" in *-dbgsym_*|*/libqanat-dev_*) continue;; esac
        $SUDO cp "$deb" "$ROOT/qanat-test/$v/"
    done
done
$SUDO cp "$SRC/tests/packaging/debian_inside.sh" "$ROOT/qanat-test/"
$SUDO timeout 300 unshare --pid --fork --mount --net --mount-proc="$ROOT/proc" \
    chroot "$ROOT" /bin/sh /qanat-test/debian_inside.sh >"$WORK/inside.log" 2>&1
rc=$?
cat "$WORK/inside.log"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$WORK/inside.log" | tail -1)
if [ -n "$line" ]; then
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
fi
[ $rc -ne 0 ] && [ -z "$line" ] && not_ok "the steps inside the tree ended early (exit $rc)"
echo "done $(elapsed)"
$SUDO rm -rf "$ROOT"
finish
