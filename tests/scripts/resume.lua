-- resume.lua: a test script for tests/integration/test_resume.py. It
-- notes the events a held and resumed session gives scripts (resume;
-- leave and disconnect only when a session really ends) and tells them
-- with /events.

local log = {}

local function note(text)
	log[#log + 1] = text
	if #log > 50 then
		table.remove(log, 1)
	end
end

parley.on("resume", function(user)
	note("resume " .. user.name)
end)

parley.on("join", function(user, room)
	note("join " .. user.name .. " " .. room.name)
end)

parley.on("leave", function(user, room, reason)
	note("leave " .. user.name .. " " .. room.name .. " " .. reason)
end)

parley.on("disconnect", function(user, reason)
	note("disconnect " .. user.name .. " " .. reason)
end)

parley.command("end", function(user, room, args)
	local u = parley.user(args)
	if not u then
		return false, "no such user", "not_in_room"
	end
	u:disconnect("ended by a script")
	return "ended"
end)

parley.command("events", function()
	return table.concat(log, "\n")
end)
