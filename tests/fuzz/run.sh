#!/bin/sh
# Runs every libFuzzer target of tests/fuzz (fuzz_*.c) for a bounded time
# each: tests/fuzz/run.sh [SECONDS [NAME...]] (default 60 seconds; NAMEs
# such as "jwt" run only fuzz_NAME.c). The core (every src/*.c
# but main.c) is compiled once with clang -fsanitize=fuzzer-no-link,
# address,undefined and linked into each target; a target that tests code
# outside src/ names those sources and their pkg-config modules in its
# opening comment (fuzz-sources:, fuzz-pkgs:). Each target starts from
# its seeds in tests/fuzz/corpus/NAME (read only) and a scratch corpus in
# the build tree that grows from run to run, with tests/fuzz/NAME.dict
# when there is one. A crash, leak, timeout or out-of-memory fails the
# run and leaves the reproducer in the output directory
# (tests/fuzz-out/ of the build tree, or $PARLEY_FUZZ_OUT); run the target
# on that file to see it again. Exits 0 when every target ran clean, 1 on
# a failure, 77 when clang or its libFuzzer is missing.
set -u

seconds=${1:-60}
case $seconds in
''|*[!0-9]*) echo "usage: $0 [SECONDS [NAME...]]" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift
only=" $* "

srcdir=$(cd "$(dirname "$0")/../.." && pwd)
builddir=${top_builddir:-$(pwd)}
[ -f "$builddir/config.h" ] || builddir=$srcdir
if [ ! -f "$builddir/config.h" ]; then
	echo "fuzz: no config.h in $builddir: run configure first" >&2
	exit 1
fi
builddir=$(cd "$builddir" && pwd)
out=${PARLEY_FUZZ_OUT:-$builddir/tests/fuzz-out}
cc=${FUZZ_CC:-clang}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

skip() {
	echo "SKIP fuzz: $*"
	exit 77
}

command -v "$cc" >/dev/null 2>&1 || skip "$cc is not installed"
mkdir -p "$out/obj" "$out/bin" || exit 1

# Is libFuzzer there? (Debian ships it with clang; some builds lack it.)
probe=$out/obj/probe
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)' \
    '{ (void)d; (void)n; return 0; }' >"$probe.c"
"$cc" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" \
    >/dev/null 2>&1 || skip "$cc cannot link -fsanitize=fuzzer (libFuzzer)"

# The Lua package has several names; LUA_CFLAGS/LUA_LIBS override.
lua_pc=
for name in lua5.4 lua-5.4 lua54 lua; do
	if pkg-config --exists "$name" 2>/dev/null; then
		lua_pc=$name
		break
	fi
done
for pc in libmicrohttpd jansson nettle icu-uc icu-i18n; do
	pkg-config --exists "$pc" 2>/dev/null || skip "pkg-config: no $pc"
done
pcs="libmicrohttpd jansson nettle icu-uc icu-i18n"
pkg_cflags=$(pkg-config --cflags $pcs)
pkg_libs=$(pkg-config --libs $pcs)
lua_cflags=${LUA_CFLAGS:-$( [ -n "$lua_pc" ] && pkg-config --cflags "$lua_pc")}
lua_libs=${LUA_LIBS:-$( [ -n "$lua_pc" ] && pkg-config --libs "$lua_pc")}
extra_libs="-ldl -lm -lpthread"
if grep -l 'sqlite3\.h' "$srcdir"/src/*.c >/dev/null 2>&1; then
	extra_libs="$extra_libs -lsqlite3"
fi
if grep -l 'argon2\.h' "$srcdir"/src/*.c >/dev/null 2>&1 &&
    grep -q '^#define HAVE_ARGON2' "$builddir/config.h" 2>/dev/null; then
	extra_libs="$extra_libs -largon2"
fi
if grep -l 'hiredis' "$srcdir"/src/*.c >/dev/null 2>&1; then
	extra_libs="$extra_libs -lhiredis"
fi

cflags="-std=gnu11 -g -O1 -fno-omit-frame-pointer"
cppflags="-I$builddir -I$srcdir -I$srcdir/src -I$srcdir/include"
cppflags="$cppflags -DPARLEY_SYSCONFDIR=\"/nonexistent/etc\""
cppflags="$cppflags -DPARLEY_WWWDIR=\"/nonexistent/www\""
cppflags="$cppflags -DPARLEY_STATEDIR=\"/nonexistent/state\""
cppflags="$cppflags -DPARLEY_SCRIPTDIR=\"$srcdir/scripts\""
cppflags="$cppflags -DPARLEY_PLUGINDIR=\"/nonexistent/plugins\""

# The core, compiled once (in parallel) for every target.
echo "fuzz: compiling the core with $cc"
objs=
failed_cc=0
for src in "$srcdir"/src/*.c; do
	base=$(basename "$src" .c)
	[ "$base" = main ] && continue
	objs="$objs $out/obj/$base.o"
done
printf '%s\n' $objs | sed 's|.*/||; s|\.o$||' |
    xargs -P "$jobs" -I{} sh -c '
	"$1" $2 $3 $4 $5 -fsanitize=fuzzer-no-link,address,undefined \
	    -c "$6/src/{}.c" -o "$7/obj/{}.o" ||
	    { echo "fuzz: cannot compile src/{}.c" >&2; exit 255; }' \
    sh "$cc" "$cflags" "$cppflags" "$pkg_cflags" "$lua_cflags" "$srcdir" \
    "$out" || failed_cc=1
if [ "$failed_cc" -ne 0 ]; then
	echo "FAIL fuzz: the core does not compile"
	exit 1
fi

# Runs one target; label names its log, scratch corpus and artifacts.
# Any further arguments are VAR=value for its environment.
status=0
ran=0
fuzz_one() {
	prog=$1 name=$2 label=$3 bin=$4
	shift 4
	envs="$*"
	scratch=$out/corpus/$label
	mkdir -p "$scratch" "$out/artifacts"
	log=$out/$label.log
	stamp=$out/obj/$label.stamp
	: >"$stamp"
	set -- "$@" "$bin" -max_total_time="$seconds" -timeout=10 \
	    -rss_limit_mb=2048 -error_exitcode=1 -timeout_exitcode=1 \
	    -print_final_stats=1 -artifact_prefix="$out/artifacts/$label-"
	[ -f "$srcdir/tests/fuzz/$name.dict" ] &&
		set -- "$@" -dict="$srcdir/tests/fuzz/$name.dict"
	set -- "$@" "$scratch"
	[ -d "$srcdir/tests/fuzz/corpus/$name" ] &&
		set -- "$@" "$srcdir/tests/fuzz/corpus/$name"
	echo "fuzz: $label for ${seconds}s (log: $log)"
	env UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}" \
	    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" "$@" >"$log" 2>&1
	rc=$?
	ran=$((ran + 1))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
	corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1)
	if [ "$rc" -eq 0 ]; then
		echo "PASS $label: ${execs:-?} execs (${speed:-?}/s)," \
		    "${cov:-cov: ?}, ${corp:-corp: ?}"
		return
	fi
	status=1
	echo "FAIL $label (exit $rc): ${execs:-?} execs"
	grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz_)' "$log" |
	    head -5 | sed 's/^/    /'
	find "$out/artifacts" -name "$label-*" -newer "$stamp" |
	    while read -r a; do
		echo "    reproducer: $a (run: ${envs:+$envs }$bin $a)"
	done
	grep -E '^ *#[0-9]+ 0x' "$log" | head -12 | sed 's/^/    /'
}

for target in "$srcdir"/tests/fuzz/fuzz_*.c; do
	[ -f "$target" ] || continue
	prog=$(basename "$target" .c)
	name=${prog#fuzz_}
	case $only in
	"  "|*" $name "*) ;;
	*) continue ;;
	esac
	bin=$out/bin/$prog
	# A target may name more sources (outside src/, built with it) and
	# pkg-config modules in its opening comment:
	#   * fuzz-sources: plugins/x/x.c   * fuzz-pkgs: gnutls
	# Without those modules it is skipped, and the others still run.
	t_srcs= t_incs= t_cflags= t_libs=
	for f in $(sed -n 's/^ \* fuzz-sources://p' "$target"); do
		t_srcs="$t_srcs $srcdir/$f"
		t_incs="$t_incs -I$srcdir/$(dirname "$f")"
	done
	t_pkgs=$(sed -n 's/^ \* fuzz-pkgs://p' "$target")
	if [ -n "$t_pkgs" ]; then
		if ! pkg-config --exists $t_pkgs 2>/dev/null; then
			echo "SKIP $prog: pkg-config: no$t_pkgs"
			continue
		fi
		t_cflags=$(pkg-config --cflags $t_pkgs)
		t_libs=$(pkg-config --libs $t_pkgs)
	fi
	if ! "$cc" $cflags $cppflags $t_incs $pkg_cflags $t_cflags $lua_cflags \
	    -fsanitize=fuzzer,address,undefined "$target" $t_srcs $objs \
	    -o "$bin" $pkg_libs $t_libs $lua_libs $extra_libs; then
		echo "FAIL $prog: does not build"
		status=1
		continue
	fi
	fuzz_one "$prog" "$name" "$prog" "$bin"
	# A target that can load the bundled scripts runs again with them.
	if grep -q PARLEY_FUZZ_SCRIPTS "$target" &&
	    ls "$srcdir"/scripts/*.lua >/dev/null 2>&1; then
		fuzz_one "$prog" "$name" "$prog+scripts" "$bin" \
		    PARLEY_FUZZ_SCRIPTS="$srcdir/scripts"
	fi
done
[ "$ran" -gt 0 ] || skip "no fuzz targets"
exit $status
