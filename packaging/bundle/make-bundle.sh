#!/bin/sh
# Makes qanat-agent-VERSION-linux-ARCH.tar.gz (`make agent-bundle`): the
# agent with the shared libraries it needs beside it, found through an
# $ORIGIN run path, so that it runs from any directory (e.g. $HOME) on a
# node with a compatible glibc, without root and without installing
# anything.  glibc's own libraries come from the node.
#   make-bundle.sh AGENT VERSION OUTDIR
set -eu
agent=$1; version=$2; out=$3
# libtool keeps the real program in .libs/ when it links shared libraries
[ -f "$(dirname "$agent")/.libs/$(basename "$agent")" ] && agent="$(dirname "$agent")/.libs/$(basename "$agent")"
command -v patchelf >/dev/null || { echo "make-bundle.sh: patchelf is needed (apt install patchelf)" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
name="qanat-agent-$version-linux-$(uname -m)"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
top="$stage/$name"
mkdir -p "$top/bin" "$top/lib" "$top/share"
cp "$agent" "$top/bin/qanat-agent"
# Every library the loader would map, but glibc's (the node's own)
LC_ALL=C ldd "$agent" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do
    case "$(basename "$lib")" in
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libresolv.so.*|libutil.so.*|ld-linux*) ;;
        *) cp -L "$lib" "$top/lib/" ;;
    esac
done
strip --strip-unneeded "$top/bin/qanat-agent" "$top"/lib/*.so* 2>/dev/null || true
patchelf --set-rpath '$ORIGIN/../lib' "$top/bin/qanat-agent"
for lib in "$top"/lib/*.so*; do patchelf --set-rpath '$ORIGIN' "$lib"; done
cp "$here/qanat-agent.user.service" "$top/share/qanat-agent.service"
cp "$here/README.bundle" "$top/README"
mkdir -p "$out"
tar -C "$stage" --owner=0 --group=0 -czf "$out/$name.tar.gz.tmp" "$name"
mv "$out/$name.tar.gz.tmp" "$out/$name.tar.gz"
echo "$out/$name.tar.gz"
