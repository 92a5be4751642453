#!/bin/sh
# Installs what building parley needs on Debian 12 (and derivatives);
# with --test, also what its test suite needs. Only missing packages are
# installed. Runs apt-get through sudo when not root.
set -eu

build="build-essential autoconf automake libtool pkg-config \
libmicrohttpd-dev libjansson-dev liblua5.4-dev nettle-dev libsqlite3-dev libhiredis-dev libicu-dev \
libgnutls28-dev libargon2-dev"
test="python3 python3-websockets chromium valgrind curl clang libclang-rt-14-dev nginx-light redis-server \
prometheus dpkg-dev debhelper lintian python3-jwt python3-cryptography clang-format"

pkgs=$build
[ "${1:-}" = "--test" ] && pkgs="$build $test"
command -v node >/dev/null 2>&1 || { [ "${1:-}" = "--test" ] && pkgs="$pkgs nodejs npm"; }

missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
echo "installing:$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
