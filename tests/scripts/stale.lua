-- stale.lua: keeps handles past their users' and rooms' lives.

local kept

parley.command("keep", function(user)
	kept = user
	return "kept " .. user.name
end)

parley.command("poke", function()
	return "name " .. kept.name -- raises once the user has left
end)

parley.command("poke-connected", function()
	return "connected " .. tostring(kept.connected) .. " id " .. kept.id
end)

parley.command("poke-notice", function()
	kept:notice("hello") -- raises once the user has left
	return "noticed"
end)

parley.command("poke-later", function(user, room)
	local who = kept
	parley.after(0.3, function()
		who:notice("too late") -- raises inside a timer
	end)
	return "later"
end)
