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
