-- actor.lua: for tests/integration/test_admin.py. Writes down in the
-- audit trail who acted when the admin API moderates (the hook's actor
-- argument), and refuses a ban or a kick of anyone whose name starts
-- with "luakeep", as it would a moderator's.
parley.on("moderation", function(user, room, target, action, actor)
	parley.audit{ action = "lua-saw-" .. action, target = target,
	    room = room.name,
	    reason = (actor and (actor.kind .. ":" .. actor.name) or "none") ..
	    (user and (" user " .. user.name) or " no user") }
	if target:match("^luakeep") then
		return false, "the script keeps " .. target, "forbidden"
	end
end)

parley.on("leave", function(user, room, reason, actor)
	if actor then
		parley.audit{ action = "lua-saw-leave", target = user.name,
		    room = room.name, reason = actor.kind .. ":" .. actor.name }
	end
end)

parley.on("topic", function(user, room, topic, actor)
	if actor and actor.kind == "admin" and topic:match("^luarefuses") then
		return false, "no such topic from " .. actor.name
	end
end)

-- Rooms the admin makes and removes, and a room it may not delete.
parley.on("room_created", function(room, user, actor)
	if actor and actor.kind == "admin" then
		parley.audit{ action = "lua-saw-room_created",
		    target = room.name, reason = "admin:" .. actor.name }
	end
end)

parley.on("delete_room", function(user, room, actor)
	if actor and room.name:match("^luakeep") then
		return false, "the script keeps the room"
	end
end)

parley.on("role", function(user, room, target, role, actor)
	parley.audit{ action = "lua-saw-role", target = target,
	    room = room.name, reason = tostring(role) .. " by " ..
	    (actor and (actor.kind .. ":" .. actor.name) or "none") }
end)
