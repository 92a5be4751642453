-- sanctions.lua: a test script for tests/integration/test_actions.py.
-- Its hooks punish the sender in the middle of the sender's own message:
-- "lua-msg-kick", "lua-msg-mute", "lua-msg-bye" in the message hook,
-- "lua-post-..." in the post hook (kick from the room, the role "muted",
-- a closed connection). The message must then reach nobody, whichever
-- way it was sent. /sayas TEXT sends TEXT through user:say.

local function punish(user, room, how)
	if how == "kick" then
		user:kick(room, "punished")
	elseif how == "mute" then
		user:add_role("muted")
	elseif how == "bye" then
		user:disconnect("punished")
	end
end

parley.on("message", function(user, room, text)
	local how = text:match("^lua%-msg%-(%a+)")
	if how then
		punish(user, room, how)
	end
end)

parley.on("post", function(user, room, text)
	local how = text:match("^lua%-post%-(%a+)")
	if how and user then
		punish(user, room, how)
	end
end)

parley.command("sayas", function(user, room, args)
	local ok, reason, code = user:say(room, args)
	if ok then
		return "said"
	end
	return false, reason, code
end)

parley.command("unmute", function(user, room, args)
	user:remove_role("muted")
	return "unmuted"
end)
