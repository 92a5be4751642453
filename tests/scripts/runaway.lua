-- runaway.lua: loops that never end, plain and wrapped in pcall.

parley.on("message", function(user, room, text)
	if text == "spin" then
		while true do end
	elseif text == "spin-pcall" then
		-- the budget keeps raising until the call unwinds: pcall cannot
		-- swallow it
		while true do
			pcall(function() while true do end end)
		end
	elseif text == "spin-coroutine" then
		local co = coroutine.wrap(function() while true do end end)
		while true do pcall(co) end
	end
end)

parley.command("spin", function()
	local n = 0
	while true do n = n + 1 end
end)

parley.command("count-to", function(user, room, args)
	local n = 0
	for i = 1, tonumber(args) do n = n + 1 end
	return tostring(n)
end)
