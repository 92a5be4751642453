-- watch.lua: a new rule to try in shadow mode: refuses messages with
-- "spam", rewrites "darn", drops "drop me", and fails on "oops". Three
-- message hooks, so /metrics must sum them per event.

parley.on("message", function(user, room, text)
	if text:find("spam") then
		return false, "no spam here"
	end
end)

parley.on("message", function(user, room, text)
	if text:find("darn") then
		return (text:gsub("darn", "d**n"))
	end
	if text == "drop me" then
		return parley.DROP
	end
end)

parley.on("message", function(user, room, text)
	if text == "oops" then
		error("the new rule has a bug")
	end
end)

parley.on("username", function(user, name)
	if name:find("^spammer") then
		return false, "not that name"
	end
end)
