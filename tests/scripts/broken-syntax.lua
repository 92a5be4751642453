-- broken-syntax.lua: does not compile (line 4).

parley.on("message", function(user, room, text)
	return text +
end)
