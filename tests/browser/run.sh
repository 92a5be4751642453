#!/bin/sh
# run.sh: runs the browser test of the web client, or skips (exit 77)
# when node, Chromium or playwright-core (npm ci in this directory) is
# missing. Exit status: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}

if ! command -v node >/dev/null 2>&1; then
	echo "SKIP: node is not installed"
	exit 77
fi
if [ ! -x "$chromium" ]; then
	echo "SKIP: no Chromium at $chromium"
	exit 77
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
	echo "SKIP: playwright-core is missing; run 'npm ci' in $here"
	exit 77
fi
exec node "$here/test_web.mjs"
