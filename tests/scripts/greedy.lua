-- greedy.lua: allocates without bound.

parley.command("hog", function()
	local t = {}
	local i = 0
	while true do
		i = i + 1
		t[i] = string.rep("x", 1000) .. i
	end
end)

parley.command("hog-pcall", function()
	local ok, err = pcall(function()
		return string.rep("y", 1 << 30)
	end)
	return "caught: " .. tostring(err)
end)

parley.command("small", function()
	local t = {}
	for i = 1, 1000 do t[i] = i end
	return "small ok " .. #t
end)
