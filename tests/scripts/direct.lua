-- direct.lua: direct-message hooks for test_direct.py: a refusal, a
-- rewrite and a silent drop, chosen by the text; the recipient is a user.

parley.on("direct", function(user, to, text)
	if text:find("secret", 1, true) then
		return false, "no secrets for " .. to.name, "rejected"
	elseif text:find("^shout ") then
		return text:sub(7):upper()
	elseif text == "drop" then
		return parley.DROP
	end
end)

-- /whisper NAME TEXT: user:direct, with the hooks above.
parley.command("whisper", function(user, room, args)
	local name, text = args:match("^(%S+)%s+(.+)$")
	local ok, why, code = user:direct(name, text)
	if not ok then
		return false, why, code
	end
end)
