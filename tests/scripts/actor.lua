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
