-- topicrule.lua: for tests/integration/test_state.py. Narrows and widens
-- who may set a topic: "lua-allows ..." is allowed to anyone,
-- "lua-refuses ..." refused to everyone, others as the server decides.
parley.on("topic", function(user, room, topic)
	if topic:match("^lua%-allows") then
		return parley.STOP
	end
	if topic:match("^lua%-refuses") then
		return false, "the script says no", "forbidden"
	end
end)

-- A moderation action it records itself.
parley.on("moderation", function(user, room, target, action, actor)
	parley.audit{ action = "seen-" .. action, target = target,
	    room = room.name, reason = "by " .. (user and user.name or
	    actor and actor.name or "?") }
end)

-- parley.store outlives a restart (the state store keeps it).
parley.command("remember", { usage = "/remember <text>" },
    function(user, room, args)
	parley.store["topicrule:note"] = args
	return "remembered"
end)

parley.command("recall", { usage = "/recall" }, function(user, room)
	return parley.store["topicrule:note"] or "nothing"
end)

-- The bans of a room in force, by name.
parley.command("bans", { usage = "/bans" }, function(user, room)
	local names = {}
	for _, b in ipairs(room:restrictions("ban")) do
		names[#names + 1] = b.name
	end
	table.sort(names)
	return #names > 0 and table.concat(names, ",") or "none"
end)
