#!/usr/bin/python3
#
# test_metrics.py: GET /metrics checked by Prometheus's own promtool
# (`promtool check metrics`, from Debian's prometheus package): at the
# built-in defaults (history-sqlite, the default scripts), with a script
# that registers three hooks of one event (one series per owner and
# event) in shadow mode, and with plugins that keep untyped values and
# typed metrics with labels. Skipped (77) without promtool.

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Skip, check, check_eq, http_get,  # noqa
    parleyd_path, EXIT_SKIP)

PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")
if PROMTOOL is None or not os.access(PROMTOOL, os.X_OK):
	print("SKIP: no promtool (Debian package prometheus)")
	sys.exit(EXIT_SKIP)

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_SCRIPTS = os.path.abspath(os.path.join(HERE, "..", "scripts"))
BUILD = os.path.dirname(os.path.dirname(parleyd_path()))

suite = Suite("metrics")
case = suite.case


def built(path):
	p = os.path.join(BUILD, path)
	if not os.path.exists(p):
		raise Skip("%s not built" % p)
	return p


async def checked(server):
	"""/metrics from server, after promtool and a check that no series
	appears twice."""
	r = await http_get(server, "/metrics")
	check_eq(r.status, 200, "/metrics status")
	text = r.body.decode()
	series = [x.rsplit(" ", 1)[0] for x in text.splitlines()
	    if x and not x.startswith("#")]
	dup = sorted(set(x for x in series if series.count(x) > 1))
	check_eq(dup, [], "series that appear more than once")
	p = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
	    capture_output=True, text=True, timeout=30)
	check_eq(p.returncode, 0, "promtool check metrics: %s%s" % (p.stdout,
	    p.stderr))
	return text


@case(config={"plugins": None, "scripts": None, "script_dirs": None})
async def test_defaults(t):
	a = await t.named("d")
	await a.join("general")
	await a.say("general", "hello")
	await checked(t.server)


@case(config={"script_dirs": [TEST_SCRIPTS], "scripts": ["watch"],
    "script_settings": {"watch": {"shadow": True}}})
async def test_three_hooks_of_one_event(t):
	a = await t.named("h")
	await a.join("general")
	for text in ("hello", "buy spam", "oops"):
		await a.say("general", text)
	text = await checked(t.server)
	lines = re.findall(r'^parley_hook_calls_total\{owner="lua:watch",'
	    r'event="message"\} (\d+)$', text, re.M)
	check_eq(len(lines), 1, "lines for the watch script's message hooks")
	check_eq(int(lines[0]), 9, "calls of three hooks on three messages")


@case()
async def test_plugins(t):
	s = t.start_server({"plugins": [built("tests/plugins/.libs/metrics.so"),
	    built("tests/plugins/.libs/verdicts.so"),
	    built("plugins/.libs/example.so")]})
	a = await t.named("p", s)
	await a.join("general")
	for text in ("hello there", "hi"):
		await a.say("general", text)
	text = await checked(s)
	check("# TYPE parley_plugin_messages_total counter" in text,
	    "the typed counter is there")
	check('parley_plugin_value{plugin="example",name="messages_seen"}' in
	    text, "an untyped value is there")


if __name__ == "__main__":
	suite.main()
