#!/bin/sh
# Installs the Debian 12 packages qanat needs to build, test and run.
# Used by quickstart.sh, tests/run-all.sh and CI; safe to run again.
#   --tests  also what the test suite needs: a real Slurm (slurm-wlm,
#            munge) for the Slurm backend tests, openssl for the fake
#            Kubernetes API server's certificate, node and npm for the
#            local S3 server (s3rver) and the SigV4 cross-check (aws4),
#            chromium and libjs-chart.js for the web UI's browser tests,
#            zsh (and bash, perl: Debian's own) for the completion and
#            -o yaml tests of the CLI, and what the Debian package
#            stage (tests/packaging/test_debian.sh) builds and checks
#            with: debhelper, dh-python, lintian, mmdebstrap.
# patchelf makes the agent bundle (make agent-bundle), help2man the man
# pages (make install, debian/).
set -e
PACKAGES="build-essential autoconf automake libtool pkg-config
  libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler
  liblmdb-dev lmdb-utils libcurl4-openssl-dev libyaml-dev libjansson-dev libmicrohttpd-dev libsystemd-dev libcmocka-dev libsodium-dev
  python3 python3-zmq python3-aiosmtpd valgrind procps clang-14 libclang-rt-14-dev
  patchelf help2man"
if [ "${1:-}" = "--tests" ]; then
    PACKAGES="$PACKAGES slurm-wlm munge openssl chromium libjs-chart.js zsh
      debhelper dh-python lintian mmdebstrap"
    # A node from elsewhere (nodesource) is fine; Debian's only if none
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
        || PACKAGES="$PACKAGES nodejs npm"
fi
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
