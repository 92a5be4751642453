#!/usr/bin/python3
#
# test_chat.py: whole chat conversations against the built parleyd: the
# original two-user scenario, and several clients in several rooms where
# each message reaches exactly the members of its room.

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check_eq, uniq  # noqa: E402

suite = Suite("chat")
case = suite.case


@case(config={})
async def test_alice_and_bob(t):
	alice = await t.client(label="alice")
	bob = await t.client(label="bob")
	room = uniq("tea")
	an, bn = uniq("alice"), uniq("bob")

	await alice.set_name(an)
	r = await alice.create(room)
	check_eq(r["participants"], [an], "created_room.participants")
	await bob.recv("room_created", pred=lambda m: m["roomName"] == room)

	r = await bob.expect({"type": "join_room", "roomName": room,
	    "username": bn}, "room_joined")
	check_eq((r["roomName"], r["username"]), (room, bn), "room_joined")
	bob.username = bn
	for c in (alice, bob):
		m = await c.recv("joined_room")
		check_eq(m["participants"], [an, bn], "%s sees participants" %
		    c.label)
		check_eq(m["username"], bn, "joined_room.username")

	m = await alice.say(room, "hi bob")
	m2 = await bob.recv("new_message")
	check_eq((m2["sender"], m2["message"], m2["roomName"]),
	    (an, "hi bob", room), "bob gets alice's message")
	check_eq(m2["seq"], m["seq"], "same seq for everyone")
	m = await bob.say(room, "hi alice \u263a")
	m2 = await alice.recv("new_message")
	check_eq((m2["sender"], m2["message"]), (bn, "hi alice \u263a"),
	    "alice gets bob's message")
	check_eq(m2["seq"], m["seq"], "same seq for everyone")

	await bob.close()
	m = await alice.recv("user_left")
	check_eq((m["roomName"], m["username"], m["participants"],
	    m["reason"]), (room, bn, [an], "disconnected"), "user_left")

	await alice.expect_error({"type": "create_room", "roomName": room},
	    "room_exists")
	await alice.expect_error({"type": "join_room",
	    "roomName": uniq("nosuchroom")}, "room_not_found")
	# alice is still in the room, alone
	p = await alice.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [an], "participants at the end")


@case(config={})
async def test_two_rooms_three_clients(t):
	a, b, c = await t.named("ann"), await t.named("ben"), \
	    await t.named("cat")
	red, blue = uniq("red"), uniq("blue")
	await a.create(red)
	await b.join(red)
	await b.create(blue)
	await c.join(blue)
	# a: red; b: red and blue; c: blue
	members = {red: [a, b], blue: [b, c]}
	script = [(a, red, "a to red"), (b, red, "b to red"),
	    (b, blue, "b to blue"), (c, blue, "c to blue"),
	    (a, red, "a again")]
	for sender, room, text in script:
		await sender.send({"type": "send_message", "roomName": room,
		    "message": text})
	for sender, room, text in script:
		for x in members[room]:
			m = await x.recv("new_message", pred=lambda m:
			    m["message"] == text)
			check_eq((m["roomName"], m["sender"]), (room,
			    sender.username), "%s: %r" % (x.label, text))
	for x in (a, b, c):
		await x.sync()
		x.assert_none("new_message", what="message to a non-member")
	# c is not in red
	await c.expect_error({"type": "send_message", "roomName": red,
	    "message": "let me in"}, "not_in_room")
	# seqs are per room
	await a.send({"type": "send_message", "roomName": red,
	    "message": "r"})
	await c.send({"type": "send_message", "roomName": blue,
	    "message": "b"})
	mr = await b.recv("new_message", pred=lambda m: m["message"] == "r")
	mb = await b.recv("new_message", pred=lambda m: m["message"] == "b")
	check_eq(mr["roomName"], red, "room of r")
	check_eq(mb["roomName"], blue, "room of b")
	await c.recv("new_message", pred=lambda m: m["message"] == "b")
	await a.recv("new_message", pred=lambda m: m["message"] == "r")
	# a leave only tells the room left
	await b.expect({"type": "leave_room", "roomName": blue}, "room_left")
	m = await c.recv("user_left")
	check_eq((m["roomName"], m["participants"], m["reason"]),
	    (blue, [c.username], "left"), "user_left in blue")
	await a.sync()
	a.assert_none("user_left", what="user_left from a room a is not in")
	await b.say(red, "still red")
	await a.recv("new_message", pred=lambda m: m["message"] ==
	    "still red")
	await c.sync()
	c.assert_none("new_message", what="red message to c")


@case(config={})
async def test_many_clients_one_room(t):
	n = 20
	cs = []
	room = uniq("crowd")
	for i in range(n):
		c = await t.named("m%d" % i)
		cs.append(c)
	await cs[0].create(room)
	for c in cs[1:]:
		await c.join(room)
	p = await cs[-1].expect({"type": "get_participants",
	    "roomName": room}, "participants")
	check_eq(p["participants"], [c.username for c in cs],
	    "participants in join order")
	for i, c in enumerate(cs):
		await c.send({"type": "send_message", "roomName": room,
		    "message": "from %d" % i})
	for c in cs:
		got, seqs = [], []
		for i in range(n):
			m = await c.recv("new_message")
			got.append(m["message"])
			seqs.append(m["seq"])
		check_eq(seqs, list(range(seqs[0], seqs[0] + n)),
		    "%s got the messages in seq order" % c.label)
		check_eq(sorted(got), sorted("from %d" % i for i in range(n)),
		    "%s got every message" % c.label)
	r = await cs[0].expect({"type": "list_rooms"}, "rooms")
	counts = {x["roomName"]: x["count"] for x in r["rooms"]}
	check_eq(counts.get(room), n, "count")


@case(config={})
async def test_rooms_joined_and_left_in_any_order(t):
	# A client in one room keeps it in place of a list: from three rooms
	# down to none and back, leaving from the front and the middle.
	a, o = await t.named("walker"), await t.named("watcher")
	rooms = [uniq("r%d" % i) for i in range(3)]
	for r in rooms:
		await o.create(r)
		await a.join(r)
	await a.expect({"type": "leave_room", "roomName": rooms[0]},
	    "room_left")
	await a.expect({"type": "leave_room", "roomName": rooms[1]},
	    "room_left")
	await a.join(rooms[0])
	await a.expect({"type": "leave_room", "roomName": rooms[2]},
	    "room_left")
	# a is in rooms[0] only: a rename reaches it there, once
	old, name = a.username, uniq("w")
	await a.set_name(name)
	ev = await o.recv("user_renamed")
	check_eq((ev["roomName"], ev["oldUsername"], ev["username"]),
	    (rooms[0], old, name), "rename in the one room left")
	await o.sync()
	o.assert_none("user_renamed", what="rename in rooms a left")
	await a.say(rooms[0], "still here")
	await o.recv("new_message", pred=lambda m: m["message"] ==
	    "still here")
	await a.expect({"type": "leave_room", "roomName": rooms[0]},
	    "room_left")
	await a.join(rooms[1])
	await a.say(rooms[1], "and back")
	await o.recv("new_message", pred=lambda m: m["message"] == "and back")


if __name__ == "__main__":
	suite.main()
