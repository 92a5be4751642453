#!/bin/sh
# python.sh: runs one Python test (and its arguments) with the Python of
# the tests: TEST_PYTHON, which configure looked for, or which the
# environment of `make check` names. Where there is none, or it lacks
# the websockets module, the test is skipped (77), not failed.
py=${TEST_PYTHON:-}
if [ -z "$py" ]; then
	echo "SKIP: no Python 3 with websockets (configure found none; set TEST_PYTHON)"
	exit 77
fi
if ! "$py" -c 'import websockets' >/dev/null 2>&1; then
	echo "SKIP: $py cannot import websockets (Debian: python3-websockets)"
	exit 77
fi
exec "$py" "$@"
