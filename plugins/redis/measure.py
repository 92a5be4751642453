#!/usr/bin/python3
#
# measure.py: delivered messages per second and latency through one
# parleyd, and through two parleyd joined by the redis plugin (senders on
# the first, receivers on the second). Each message carries its send
# time; a delivery's latency is receive time minus send time.
#
#   measure.py URL_SENDERS URL_RECEIVERS [receivers senders rate seconds]

import asyncio
import json
import sys
import time

import websockets


async def member(url, name, room):
	ws = await websockets.connect(url, max_size=1 << 24, ping_interval=None)
	await ws.recv()  # welcome
	await ws.send(json.dumps({"type": "join_room", "roomName": room,
	    "username": name}))
	while json.loads(await ws.recv()).get("type") != "room_joined":
		pass
	return ws


async def receive(ws, lat, stop):
	while not stop.is_set():
		try:
			m = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
		except asyncio.TimeoutError:
			continue
		if m.get("type") == "new_message" and \
		    m["message"].startswith("t="):
			lat.append(time.monotonic() - float(m["message"][2:]))


async def send(ws, room, rate, seconds):
	n = int(rate * seconds)
	t0 = time.monotonic()
	for i in range(n):
		await ws.send(json.dumps({"type": "send_message",
		    "roomName": room, "message": "t=%.6f" % time.monotonic()}))
		delay = t0 + (i + 1) / rate - time.monotonic()
		if delay > 0:
			await asyncio.sleep(delay)
	return n


async def main():
	surl, rurl = sys.argv[1], sys.argv[2]
	nrecv = int(sys.argv[3]) if len(sys.argv) > 3 else 20
	nsend = int(sys.argv[4]) if len(sys.argv) > 4 else 4
	rate = float(sys.argv[5]) if len(sys.argv) > 5 else 100
	secs = float(sys.argv[6]) if len(sys.argv) > 6 else 5
	room = "general"
	tag = "%d" % (time.time() * 1000 % 100000)
	recv = [await member(rurl, "r%s-%d" % (tag, i), room)
	    for i in range(nrecv)]
	senders = [await member(surl, "s%s-%d" % (tag, i), room)
	    for i in range(nsend)]
	await asyncio.sleep(1)
	lat, stop = [], asyncio.Event()
	tasks = [asyncio.create_task(receive(w, lat, stop)) for w in recv]
	t0 = time.monotonic()
	sent = sum(await asyncio.gather(*(send(w, room, rate, secs)
	    for w in senders)))
	# Drain: wait until every delivery arrived or 5 s passed.
	want = sent * nrecv
	deadline = time.monotonic() + 5
	while len(lat) < want and time.monotonic() < deadline:
		await asyncio.sleep(0.05)
	elapsed = time.monotonic() - t0
	stop.set()
	await asyncio.gather(*tasks)
	lat.sort()
	p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
	print("sent=%d deliveries=%d/%d rate=%.0f/s p50=%.2fms p99=%.2fms "
	    "max=%.2fms" % (sent, len(lat), want, len(lat) / elapsed, p(0.5),
	    p(0.99), lat[-1] * 1000))
	for w in recv + senders:
		await w.close()


asyncio.run(main())
