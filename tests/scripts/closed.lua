-- closed.lua: a hook of every event that decides, each raising an error
-- on demand (a name, room or text starting with "boom"; the connect hook
-- after /fail-next-connect).

local function boom()
	local t = nil
	return t.field -- attempt to index a nil value
end

parley.on("connect", function(user)
	if parley.store.closed_fail_connect then
		parley.store.closed_fail_connect = nil
		boom()
	end
end)

parley.command("fail-next-connect", function()
	parley.store.closed_fail_connect = true
	return "ok"
end)

parley.on("username", function(user, name)
	if name:find("^boom") then boom() end
end)

parley.on("create_room", function(user, name)
	if name:find("^boom") then boom() end
end)

parley.on("join", function(user, room)
	if room.name:find("^jboom") then boom() end
end)

parley.on("message", function(user, room, text)
	if text:find("^boom") then boom() end
end)

parley.on("post", function(user, room, text)
	if text:find("^postboom") then boom() end
end)

parley.command("ok", function()
	return "still here"
end)
