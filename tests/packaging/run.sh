#!/bin/sh
# run.sh: the release tarball as a distribution builds it. From `make
# dist`'s tarball: a default `./configure --prefix=/usr --sysconfdir=/etc
# --localstatedir=/var`, `make`, `make install DESTDIR=...`; then checks
# that
# - every installed file is under DESTDIR (nothing written beside or
#   outside it, no directory named auto or yes) and under the configured
#   directories;
# - the systemd unit and the sysusers.d file are where pkg-config's
#   systemd module says (and absent when it says nothing);
# - no path of the build machine is in an installed file, and the state
#   directory and what the daemon creates in it are not world-readable;
# - the installed parleyd --check-config with the installed sample
#   configuration agrees with whether the daemon starts with it, in this
#   build and in one without SQLite (the sample must then not name the
#   history-sqlite plugin);
# - where dpkg-buildpackage, debhelper and lintian are installed, the
#   minimal debian/ beside this script builds .debs with no lintian
#   error or warning about upstream's files.
# Usage: tests/packaging/run.sh [BUILDDIR] from a configured tree.
# Exits 0, 1, or 77 (skip: not a configured tree, or no pkg-config).
set -u
here=$(cd "$(dirname "$0")" && pwd)
builddir=$(cd "${1:-.}" && pwd)
python=${TEST_PYTHON:-/usr/bin/python3}
jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -gt 4 ] && jobs=4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-pkg.XXXXXX") || exit 99
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
passed=0
failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
die() { echo "FAIL: $*"; echo "$passed passed, $((failed + 1)) failed"; exit 1; }
# Our caller's jobserver is not ours.
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make "$@"; }

[ -f "$builddir/Makefile" ] || { echo "SKIP: $builddir is not a configured tree"; exit 77; }
pkgconfig=${PKG_CONFIG:-pkg-config}
$pkgconfig --version >/dev/null 2>&1 || { echo "SKIP: no pkg-config"; exit 77; }

# --- The tarball ------------------------------------------------------
mk -C "$builddir" dist >"$tmp/dist.log" 2>&1 || { tail -20 "$tmp/dist.log"; die "make dist"; }
tarball=$(ls -t "$builddir"/parley-*.tar.gz 2>/dev/null | head -1)
[ -n "$tarball" ] || die "make dist made no parley-*.tar.gz"
name=$(basename "$tarball" .tar.gz)
version=${name#parley-}
mv "$tarball" "$tmp/" && tarball=$tmp/$name.tar.gz
mkdir "$tmp/x" && tar -xzf "$tarball" -C "$tmp/x" || die "cannot unpack $tarball"
src=$tmp/x/$name
echo "building $name from $tarball"

# --- A distribution's build -------------------------------------------
# configure by absolute path: __FILE__ then holds it, which must not
# reach the binaries.
dest=$tmp/dest
log=$tmp/log
mkdir "$log" || exit 99
stamp=$log/stamp
: >"$stamp"
ls -a "$tmp" >"$log/before-install.txt"
(cd "$src" && "$src/configure" --prefix=/usr --sysconfdir=/etc \
    --localstatedir=/var) >"$log/configure.log" 2>&1 ||
	{ tail -30 "$log/configure.log"; die "configure"; }
mk -C "$src" -j"$jobs" >"$log/make.log" 2>&1 || { tail -30 "$log/make.log"; die "make"; }
[ -e "$src/bench/parley-bench" ] && fail "plain make built bench/parley-bench"
mk -C "$src" install DESTDIR="$dest" >"$log/install.log" 2>&1 ||
	{ tail -30 "$log/install.log"; die "make install DESTDIR=$dest"; }
pass "tarball configures, builds and installs into DESTDIR"

# Nothing beside DESTDIR (a directory named by a relative word such as
# "auto" lands there: DESTDIR/../destauto), and nothing of ours newly in
# the system's directories.
ls -a "$tmp" | grep -v '^dest$' >"$log/after-install.txt"
beside=$(comm -13 "$log/before-install.txt" "$log/after-install.txt")
[ -z "$beside" ] || fail "make install wrote beside DESTDIR: $beside"
outside=$(find /usr /etc /var /lib /opt -xdev -newer "$stamp" \
    \( -name 'parley*' -o -name 'history-sqlite*' \) 2>/dev/null |
    grep -v "^$tmp" | head -5)
[ -z "$outside" ] || fail "make install wrote outside DESTDIR: $outside"
bad=$(find "$dest" "$src" \( -name auto -o -name yes \) -print | head -5)
[ -z "$bad" ] || fail "directory named auto or yes: $bad"
[ -z "$beside$outside$bad" ] && pass "everything installed is under DESTDIR, no auto/ or yes/"

# Every file under a directory it belongs in.
unitdir=$($pkgconfig --variable=systemdsystemunitdir systemd 2>/dev/null)
sysusersdir=$($pkgconfig --variable=sysusersdir systemd 2>/dev/null)
stray=$(cd "$dest" && find . ! -type d | sed 's|^\.||' | while read -r f; do
	case $f in
	/usr/sbin/parleyd | /usr/sbin/parleyctl | /usr/include/parley/* | \
	/usr/lib/parley/* | \
	/usr/lib/pkgconfig/parley.pc | /usr/share/parley/* | \
	/usr/share/man/man[0-9]/* | /etc/parley/* | /etc/logrotate.d/parley) ;;
	"$unitdir/parleyd.service") [ -n "$unitdir" ] || echo "$f" ;;
	"$sysusersdir/parley.conf") [ -n "$sysusersdir" ] || echo "$f" ;;
	*) echo "$f" ;;
	esac
done)
[ -z "$stray" ] && pass "every installed file is in a configured directory" ||
	fail "installed where nothing should be: $stray"

# systemd files where pkg-config says, or none.
ok=1
if [ -n "$unitdir" ]; then
	[ -f "$dest$unitdir/parleyd.service" ] ||
		{ ok=0; fail "no parleyd.service in $unitdir (pkg-config systemd)"; }
	grep -q '^ExecStart=/usr/sbin/parleyd ' "$dest$unitdir/parleyd.service" 2>/dev/null ||
		{ ok=0; fail "parleyd.service does not start /usr/sbin/parleyd"; }
elif [ -n "$(find "$dest" -name parleyd.service)" ]; then
	ok=0; fail "parleyd.service installed though pkg-config has no systemd"
fi
if [ -n "$sysusersdir" ]; then
	[ -f "$dest$sysusersdir/parley.conf" ] ||
		{ ok=0; fail "no parley.conf in $sysusersdir (pkg-config systemd)"; }
elif [ -n "$(find "$dest" -path '*sysusers.d*' -type f)" ]; then
	ok=0; fail "a sysusers.d file installed though pkg-config has no systemd"
fi
[ $ok = 1 ] && pass "unit in '${unitdir:-nowhere}', sysusers.d file in '${sysusersdir:-nowhere}', as pkg-config says"

# No machine paths: the sources and the build were in $tmp. Debugging
# information names the build directory (the packager maps or splits
# it off), so binaries are looked at without it, as they are shipped.
leak=
for f in $(cd "$dest" && find . -type f); do
	if [ "$(head -c 4 "$dest/$f" | od -An -c | tr -d ' ')" = '177ELF' ]; then
		objcopy --strip-debug "$dest/$f" "$log/stripped" 2>/dev/null ||
			cp "$dest/$f" "$log/stripped"
		grep -q -- "$tmp" "$log/stripped" && leak="$leak $f"
	elif grep -q -- "$tmp" "$dest/$f"; then
		leak="$leak $f"
	fi
done
[ -z "$leak" ] && pass "no build path in any installed file" ||
	fail "installed files hold the build path $tmp:$leak"

# The state directory is not for everyone.
mode=$(stat -c %a "$dest/var/lib/parley" 2>/dev/null)
case $mode in
7[0-7]0) pass "state directory installed with mode $mode" ;;
*) fail "state directory mode is '$mode', readable by others" ;;
esac

# The installed daemon with the installed sample, its paths pointed into
# DESTDIR, run with a lax umask: --check-config and start-up agree, and
# the history it writes is not readable by others.
# try_conf PARLEYD CONF DIR: runs PARLEYD --check-config on CONF, then
# starts it with CONF; sets checked and started to yes or no.
try_conf() {
	if (umask 022; exec "$1" --check-config --config "$2") \
	    >"$3/check.out" 2>&1; then
		checked=yes
	else
		checked=no
	fi
	started=no
	(umask 022; exec "$1" --config "$2" --port 0) >"$3/out" 2>"$3/err" &
	pid=$!
	for i in $(seq 100); do
		if grep -q '^parleyd: listening on' "$3/out"; then
			started=yes
			break
		fi
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM $pid 2>/dev/null
	wait $pid 2>/dev/null
	pid=
}
# expect CHECKED STARTED DIR WHAT: try_conf's outcome was CHECKED and
# STARTED (yes or no).
expect() {
	if [ $checked = "$1" ] && [ $started = "$2" ]; then
		pass "$4: --check-config $checked, daemon started $started"
	else
		fail "$4: --check-config $checked, daemon started $started"
		cat "$3/check.out" "$3/err" | tail -10
	fi
}
# conf_from SAMPLE DIR PLUGINDIR [SHAREDIR]: DIR/parley.conf, the sample
# with its state in DIR and its files looked for where they are.
conf_from() {
	mkdir -p "$2/state"
	{
		cat "$1"
		echo "state_dir = \"$2/state\""
		echo "listen = \"127.0.0.1\""
		echo "plugin_dir = \"$3\""
		if [ -n "${4:-}" ]; then
			echo "script_dirs = { \"$4/scripts\" }"
			echo "web_root = \"$4/www\""
		fi
	} >"$2/parley.conf"
}

sample=$dest/etc/parley/parley.conf.sample
[ -f "$sample" ] || die "no installed parley.conf.sample"
grep -q '/usr/local' "$sample" && fail "the sample names /usr/local paths"
mkdir "$tmp/run1"
conf_from "$sample" "$tmp/run1" "$(dirname "$(find "$dest" -name example.so | head -1)")" \
    "$dest/usr/share/parley"
try_conf "$dest/usr/sbin/parleyd" "$tmp/run1/parley.conf" "$tmp/run1"
expect yes yes "$tmp/run1" "installed sample"
if grep -q '^plugins = { "history-sqlite" }' "$sample"; then
	m=$(stat -c %a "$tmp/run1/state/history.db" 2>/dev/null)
	case $m in
	[0-7][0-7]0) pass "history.db created with mode $m under umask 022" ;;
	*) fail "history.db mode '$m' under umask 022 (readable by others)" ;;
	esac
else
	fail "the sample of a build with SQLite does not enable history-sqlite"
fi

# --- configure's options, in a fresh copy (a source tree configured in
# place builds nowhere else) --------------------------------------------
mkdir "$tmp/x2" && tar -xzf "$tarball" -C "$tmp/x2" || die "cannot unpack $tarball"
nb=$tmp/x2/$name
# A pkg-config that knows neither SQLite nor hiredis.
{
	echo '#!/bin/sh'
	echo 'for a; do case $a in sqlite3*|hiredis*) exit 1 ;; esac; done'
	echo "exec $pkgconfig \"\$@\""
} >"$log/pkg-config"
chmod +x "$log/pkg-config"
for lib in sqlite:libsqlite3-dev hiredis:libhiredis-dev; do
	opt=--with-${lib%%:*}
	deb=${lib#*:}
	if (cd "$nb" && PKG_CONFIG="$log/pkg-config" ./configure $opt) \
	    >"$log/configure-$deb.log" 2>&1; then
		fail "configure $opt without it succeeded"
	elif grep -q "error:.*$deb" "$log/configure-$deb.log"; then
		pass "configure $opt without it: an error naming $deb"
	else
		tail -n 3 "$log/configure-$deb.log"
		fail "configure $opt without it: no error naming $deb"
	fi
done
# A bare --with-DIR means the default: pkg-config's directory.
if (cd "$nb" && ./configure --with-systemdsystemunitdir --with-sysusersdir) \
    >"$log/configure-bare.log" 2>&1; then
	u=$(sed -n 's/^systemdsystemunitdir = //p' "$nb/Makefile")
	su=$(sed -n 's/^sysusersdir = //p' "$nb/Makefile")
	if [ "$u" = "${unitdir:-no}" ] && [ "$su" = "${sysusersdir:-no}" ]; then
		pass "bare --with-systemdsystemunitdir, --with-sysusersdir: pkg-config's directories"
	else
		fail "bare --with-...dir gave '$u' and '$su'; pkg-config says '$unitdir' and '$sysusersdir'"
	fi
else
	fail "configure --with-systemdsystemunitdir --with-sysusersdir"
fi

# A build without SQLite and without the optional files: its sample
# must not enable the plugin, --check-config agrees with the daemon on
# the sample either way, and --without-... installs none of the files.
if (cd "$nb" && ./configure --prefix=/usr --sysconfdir=/etc \
    --localstatedir=/var --without-sqlite --without-systemdsystemunitdir \
    --without-sysusersdir --without-pkgconfigdir --without-logrotatedir) \
    >"$log/configure2.log" 2>&1 &&
    mk -C "$nb" -j"$jobs" >"$log/make2.log" 2>&1 &&
    mk -C "$nb" install DESTDIR="$tmp/dest2" >"$log/install2.log" 2>&1; then
	extra=$(cd "$tmp/dest2" && find . \( -name parleyd.service -o \
	    -path '*sysusers.d*' -o -name parley.pc -o -path '*logrotate*' \
	    -o -name history-sqlite.so \) -print)
	[ -z "$extra" ] && pass "--without-...: none of those files installed" ||
		fail "installed despite --without-...: $extra"
	s=$nb/parley.conf.sample
	if grep -q '^plugins = { "history-sqlite" }' "$s"; then
		fail "the sample of a build without SQLite enables history-sqlite"
	else
		pass "the sample of a build without SQLite leaves history-sqlite off"
	fi
	mkdir "$tmp/run2"
	conf_from "$s" "$tmp/run2" "$nb/plugins/.libs"
	try_conf "$nb/src/parleyd" "$tmp/run2/parley.conf" "$tmp/run2"
	expect yes yes "$tmp/run2" "sample without SQLite"
	# The sample as it was (history-sqlite on) in this build: both
	# --check-config and the daemon must refuse it.
	mkdir "$tmp/run3"
	sed 's/^--*plugins = { "history-sqlite" }/plugins = { "history-sqlite" }/' \
	    "$s" >"$tmp/run3/sample"
	conf_from "$tmp/run3/sample" "$tmp/run3" "$nb/plugins/.libs"
	try_conf "$nb/src/parleyd" "$tmp/run3/parley.conf" "$tmp/run3"
	expect no no "$tmp/run3" "history-sqlite on without SQLite"
else
	tail -n 20 "$log/configure2.log" "$log/make2.log" "$log/install2.log"
	fail "configure --without-sqlite ... && make && make install"
fi

# --- The Debian package -----------------------------------------------
deb_tools=yes
for t in dpkg-buildpackage dh lintian; do
	command -v $t >/dev/null 2>&1 || { deb_tools=no; echo "SKIP: .deb build: no $t"; }
done
if [ $deb_tools = yes ]; then
	mkdir "$tmp/deb" && tar -xzf "$tarball" -C "$tmp/deb" &&
	cp "$tarball" "$tmp/deb/parley_$version.orig.tar.gz" &&
	cp -R "$here/debian" "$tmp/deb/$name/debian" || die "cannot set up debian/"
	d=$tmp/deb/$name/debian
	cat >"$d/changelog" <<EOF
parley ($version-1) unstable; urgency=medium

  * Build of the release tarball by parley's packaging test.

 -- Parley Packaging Test <packaging@example.org>  Thu, 01 Jan 2026 00:00:00 +0000
EOF
	# pkg-config's systemd directories, as the package has them.
	sed -i -e "s|@systemdsystemunitdir@|${unitdir#/}|" \
	    -e "s|@sysusersdir@|${sysusersdir#/}|" "$d/parley.install"
	[ -n "$unitdir" ] || sed -i '/parleyd.service$/d' "$d/parley.install"
	[ -n "$sysusersdir" ] || sed -i '/sysusers/d' "$d/parley.install"
	if ! (cd "$tmp/deb/$name" && dpkg-checkbuilddeps) >"$tmp/deb/deps.log" 2>&1; then
		cat "$tmp/deb/deps.log"
		echo "SKIP: .deb build: build dependencies missing"
	elif (cd "$tmp/deb/$name" && DEB_BUILD_OPTIONS="nocheck parallel=$jobs" \
	    dpkg-buildpackage -us -uc -b) >"$tmp/deb/build.log" 2>&1; then
		pass "dpkg-buildpackage built $(cd "$tmp/deb" && echo *.deb)"
		changes=$(ls "$tmp"/deb/*.changes | head -1)
		lintian -EvIL +pedantic --tag-display-limit 0 "$changes" \
		    >"$tmp/deb/lintian.log" 2>&1
		# Tags about the minimal debian/ itself, not about upstream.
		sed -n 's/^\([EW]\): //p' "$tmp/deb/lintian.log" | grep -v \
		    -e ' initial-upload-closes-no-bugs' \
		    -e ' out-of-date-standards-version' \
		    -e ' newer-standards-version' \
		    >"$tmp/deb/lintian.bad"
		if [ -s "$tmp/deb/lintian.bad" ]; then
			cat "$tmp/deb/lintian.bad"
			fail "lintian: errors or warnings (above)"
		else
			pass "lintian: no error, no warning ($(grep -c '^[IPX]:' "$tmp/deb/lintian.log") info/pedantic tags)"
		fi
		if [ -n "${PARLEY_PACKAGING_VERBOSE:-}" ]; then
			cat "$tmp/deb/lintian.log"
		fi
	else
		tail -40 "$tmp/deb/build.log"
		fail "dpkg-buildpackage"
	fi
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
