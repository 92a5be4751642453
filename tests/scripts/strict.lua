-- strict.lua: fails on "strict"; its failure policy is deny.

parley.on("message", function(user, room, text)
	if text == "strict" then
		error("strict hook fails")
	end
end)
