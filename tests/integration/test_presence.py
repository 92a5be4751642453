#!/usr/bin/python3
#
# test_presence.py: large rooms (protocol 1.1, "Large rooms"). Presence
# events carry the member count always and the whole member list only up
# to presence_limit members; get_participants pages the list; welcome
# lists presence_delta among its features.

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check, check_eq, uniq  # noqa: E402

suite = Suite("presence")
case = suite.case

LIMIT3 = {"presence_limit": 3}


@case(config=LIMIT3)
async def test_welcome_features(t):
	c = await t.client()
	w = c.welcome
	check_eq(w.get("protocol"), 1, "protocol")
	check_eq(w.get("minor"), 1, "minor")
	check("presence_delta" in w.get("features", []),
	    "presence_delta in features: %r" % w)
	check("history" in w.get("features", []), "history in features")


@case(config=LIMIT3)
async def test_lists_up_to_the_limit_then_changes(t):
	room = uniq("big")
	owner = await t.named("own")
	r = await owner.request({"type": "create_room", "roomName": room})
	check_eq((r["count"], r["participants"]), (1, [owner.username]),
	    "created_room")
	members = [owner]
	for i in range(2, 6):
		c = await t.named("m%d" % i)
		r = await c.request({"type": "join_room", "roomName": room})
		check_eq(r["type"], "room_joined", "joined")
		check_eq(r["count"], i, "room_joined count")
		check_eq("participants" in r, i <= 3,
		    "room_joined lists members only up to the limit (%d)" % i)
		members.append(c)
		for m in members:
			ev = await m.recv("joined_room", pred=lambda e:
			    e["username"] == c.username)
			check_eq(ev["count"], i, "joined_room count")
			if i <= 3:
				check_eq(ev["participants"],
				    [x.username for x in members],
				    "joined_room lists members in join order")
			else:
				check("participants" not in ev,
				    "above the limit only the change: %r" % ev)
	# a rename above the limit: the change and the count
	new = uniq("ren")
	old = members[1].username
	await members[1].set_name(new)
	ev = await owner.recv("user_renamed")
	check_eq((ev["oldUsername"], ev["username"], ev["count"]),
	    (old, new, 5), "user_renamed")
	check("participants" not in ev, "no list above the limit")
	# leaving back to the limit: the list comes back
	await members[4].request({"type": "leave_room", "roomName": room})
	ev = await owner.recv("user_left")
	check_eq(ev["count"], 4, "user_left count")
	check("participants" not in ev, "4 > 3: no list")
	await members[3].request({"type": "leave_room", "roomName": room})
	ev = await owner.recv("user_left", pred=lambda e: e["username"] ==
	    members[3].username)
	check_eq((ev["count"], ev["participants"]),
	    (3, [m.username for m in members[:3]]), "3 <= 3: the list")


@case(config=LIMIT3)
async def test_paged_participants(t):
	room = uniq("pg")
	cs = [await t.named("p%d" % i) for i in range(6)]
	await cs[0].create(room)
	for c in cs[1:]:
		await c.join(room)
	names = [c.username for c in cs]
	r = await cs[0].request({"type": "get_participants", "roomName": room})
	check_eq((r["count"], r["offset"], r["participants"]), (6, 0, names),
	    "the first page holds everyone")
	r = await cs[0].request({"type": "get_participants", "roomName": room,
	    "offset": 2, "limit": 3})
	check_eq((r["count"], r["offset"], r["participants"]),
	    (6, 2, names[2:5]), "a page")
	r = await cs[0].request({"type": "get_participants", "roomName": room,
	    "offset": 5, "limit": 100000})
	check_eq(r["participants"], names[5:], "limit capped, the last page")
	r = await cs[0].request({"type": "get_participants", "roomName": room,
	    "offset": 60})
	check_eq((r["count"], r["participants"]), (6, []), "past the end")
	for bad in ({"offset": -1}, {"limit": "3"}, {"offset": 1.5}):
		m = {"type": "get_participants", "roomName": room}
		m.update(bad)
		await cs[0].expect_error(m, "bad_request")


@case(config={})
async def test_default_limit_lists_small_rooms(t):
	room = uniq("sm")
	a = await t.named("a")
	b = await t.named("b")
	await a.create(room)
	r = await b.request({"type": "join_room", "roomName": room})
	check_eq((r["count"], r["participants"]), (2, [a.username,
	    b.username]), "room_joined within the default limit")


if __name__ == "__main__":
	suite.main()
