-- events.lua: a test script for tests/integration/test_actions.py. It
-- records the events of 0.2 (renamed, room_created, room_removed,
-- reload, the message hook's request id) in parley.store, removes rooms
-- on request, and shows parley.off.

local function note(text)
	parley.store.last_event = text
end

parley.on("renamed", function(user, old)
	note("renamed " .. old .. ">" .. user.name)
end)

parley.on("room_created", function(room, user)
	note("room_created " .. room.name .. " " .. (user and user.name or "nil"))
end)

parley.on("room_removed", function(room)
	note("room_removed " .. room.name)
end)

parley.on("reload", function()
	note("reload")
end)

parley.on("message", function(user, room, text, id)
	note("message id=" .. tostring(id))
end)

-- A hook that appends to messages until /off removes it.
local function shout(user, room, text)
	if text:find("^shout ") then
		return text .. "!"
	end
end
parley.on("message", shout)

parley.command("last", function()
	return parley.store.last_event or "none"
end)

parley.command("off", function()
	return tostring(parley.off("message", shout)) .. " " ..
	    tostring(parley.off("message", shout))
end)

parley.command("rmroom", function(user, room, args)
	local r = parley.room(args)
	if not r then
		return false, "no such room", "room_not_found"
	end
	r:remove()
	return "removed"
end)
