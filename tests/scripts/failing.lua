-- failing.lua: hooks and commands that raise errors.

parley.on("message", function(user, room, text)
	if text == "fail" then
		local t = nil
		return t.field -- attempt to index a nil value
	end
end)

parley.command("fail", function()
	error("this command always fails")
end)

parley.command("ok", function()
	return "still here"
end)
