-- commands.lua: the slash commands of PROTOCOL.md and a few more.
--
-- A worked example of parley.command. A chat message that starts with
-- "/" runs the command of that name (from any script or plugin); its
-- function gets the user, the room the message was sent to, the text
-- after the name, and a table with the request's id. It returns nothing,
-- a string (sent back as a notice answering the request), or false, a
-- reason and optionally an error code (sent back as an error).
--
--   /help [command]       the commands, from every script and plugin
--   /me <action>          an action: the room gets "action": true
--   /nick <name>          as set_username, with every username rule
--   /who                  who is in the room
--   /oper <password>      become a server operator (oper_password)
--   /kick <user> [reason] operators and the room's owner (its creator;
--                         for a room an account made, that account)
--   /topic [text]         show or (owner, moderators, operators) set it
--   /ban <user> [min] [reason], /unban <user>
--   /mute <user> [min], /unmute <user>
--   /op <user>, /deop <user>   the room's moderator role
--   /modlog [n]           operators: the moderation log
--
-- Names with spaces are written in double quotes: /kick "Ada L" spam.
-- Topics, roles, bans and mutes are the room's, kept by the server.

local OPER = "oper"

local function is_oper(user)
	return user:has_role(OPER)
end

-- Splits `"a name" rest` or `name rest` into the name and the rest.
local function take_name(args)
	local name, rest = args:match('^%s*"([^"]+)"%s*(.*)$')
	if name == nil then
		name, rest = args:match("^%s*(%S+)%s*(.*)$")
	end
	return name, rest
end

local function find_member(room, name)
	local target = name and parley.user(name)
	if target == nil or not target:in_room(room) then
		return nil
	end
	return target
end

-- A mute is the role "muted" plus its end time in the store under
-- "mute_until:" .. user.key (for an account, true for one without end).
-- user.key names the account when there is one, so that a mute
-- outlives the connection. moderation.lua keeps mutes the same way.
--
-- The remaining seconds of a mute, true for one without end, or nil;
-- an expired one is lifted. An account's mute comes back on its next
-- connection.
local function muted(user)
	local key = "mute_until:" .. user.key
	local till = parley.store[key]
	if user.account and till ~= nil and not user:has_role("muted") then
		user:add_role("muted")
	end
	if not user:has_role("muted") then
		return nil
	end
	if till == nil or till == true then
		return true
	end
	if parley.time() >= till then
		user:remove_role("muted")
		parley.store[key] = nil
		return nil
	end
	return math.ceil(till - parley.time())
end

parley.command("help", {
	usage = "/help [command]",
	help = "lists the commands, or explains one",
}, function(user, room, args)
	local want = args:match("^%s*/?(%S+)")
	local lines = {}
	for _, c in ipairs(parley.commands()) do
		if want == nil or c.name == want then
			local usage = c.usage or ("/" .. c.name)
			if c.help ~= "" then
				usage = usage .. " - " .. c.help
			end
			lines[#lines + 1] = usage
		end
	end
	if #lines == 0 then
		return false, "no command /" .. want, "unknown_command"
	end
	if want == nil then
		table.insert(lines, 1, "Commands:")
	end
	return table.concat(lines, "\n")
end)

parley.command("me", {
	usage = "/me <action>",
	help = "says what you do, as an action",
}, function(user, room, args)
	if args:match("^%s*$") then
		return false, "usage: /me <action>", "bad_request"
	end
	-- user:say runs the message hooks, as for any message.
	local ok, why, code = user:say(room, args, true)
	if not ok then
		return false, why, code
	end
end)

parley.command("nick", {
	usage = "/nick <name>",
	help = "changes your name",
}, function(user, room, args, request)
	local name = args:match("^%s*(.-)%s*$")
	if name == "" then
		return false, "usage: /nick <name>", "bad_request"
	end
	local ok, why, code = user:rename(name, { hooks = true, id = request.id })
	if not ok then
		return false, why, code
	end
end)

parley.command("who", {
	usage = "/who",
	help = "lists who is in this room",
}, function(user, room)
	local names = {}
	for _, member in ipairs(room.members) do
		local name = member.name
		if is_oper(member) then
			name = name .. " (operator)"
		end
		if member.id == room.owner_id then
			name = name .. " (owner)"
		end
		names[#names + 1] = name
	end
	return string.format("%d in %s: %s", #names, room.name,
	    table.concat(names, ", "))
end)

-- Wrong passwords are limited by the server, per address and server-wide:
-- after three, a minute's wait, doubling with each wrong guess after it.
parley.command("oper", {
	usage = "/oper <password>",
	help = "makes you a server operator",
}, function(user, room, args)
	local password = args:match("^%s*(.-)%s*$")
	local ok, wait = parley.check_oper_password(password, user)
	if ok == nil then
		return false, "this server has no operator password", "forbidden"
	end
	if not ok and wait then
		return false, string.format("too many wrong passwords; try again "
		    .. "in %d seconds", wait), "rate_limited"
	end
	if not ok then
		parley.log("warn", string.format("wrong /oper password from %s (%s)",
		    user.name, user.address))
		return false, "wrong password", "forbidden"
	end
	user:add_role(OPER)
	parley.log("info", string.format("%s (%s) is now an operator",
	    user.name, user.address))
	return "you are now a server operator"
end)

parley.command("kick", {
	usage = "/kick <user> [reason]",
	help = "removes someone from this room (operators and the owner)",
}, function(user, room, args)
	if not is_oper(user) and room.owner_id ~= user.id then
		return false, "only operators and the room's owner may kick",
		    "forbidden"
	end
	local name, reason = take_name(args)
	if name == nil then
		return false, "usage: /kick <user> [reason]", "bad_request"
	end
	local target = find_member(room, name)
	if target == nil then
		return false, name .. " is not in this room", "not_in_room"
	end
	if is_oper(target) and not is_oper(user) then
		return false, "operators cannot be kicked by the owner",
		    "forbidden"
	end
	if reason == "" then
		reason = "kicked by " .. user.name
	end
	target:kick(room, reason)
	parley.log("info", string.format("%s kicked %s from %s: %s", user.name,
	    target.name, room.name, reason))
	return "kicked " .. target.name
end)

-- The topic lives with the room (room.topic, set_topic): it survives a
-- restart, and set_topic's rule (the owner, moderators and operators)
-- and hooks decide who may change it.
parley.command("topic", {
	usage = "/topic [text]",
	help = "shows the room's topic; the owner, moderators and operators set it",
}, function(user, room, args)
	local text = args:match("^%s*(.-)%s*$")
	if text == "" then
		local topic = room.topic
		return topic ~= "" and ("Topic: " .. topic) or "No topic is set"
	end
	local ok, why, code = room:set_topic(text, { by = user })
	if not ok then
		return false, why, code
	end
	room:notice(user.name .. " set the topic: " .. text)
end)

-- Whoever joins a room with a topic is told it, once the join is done.
parley.on("join", function(user, room)
	local topic = room.topic
	if topic ~= "" then
		parley.after(0, function()
			if user.connected and user:in_room(room) then
				user:notice("Topic: " .. topic, room)
			end
		end)
	end
end)

-- Bans, mutes and room roles are the room's, kept by the server's state
-- store: they bind to the target's account, or to a guest's session and
-- address, survive reconnects and restarts, and end on time. The room's
-- owner, its moderators and operators may use them (the server decides,
-- through the same rule and hooks as the protocol's requests); each is
-- written to the audit trail (/modlog).

local function target_of(room, args, usage)
	local name, rest = take_name(args)
	local target = name and parley.user(name)
	if name == nil then
		return nil, usage
	end
	if target == nil then
		return nil, name .. " is not connected"
	end
	return target, rest
end

-- "[minutes] [reason]" -> minutes or nil, reason or nil; or false, why.
local function minutes_reason(rest)
	local first, more = rest:match("^(%S+)%s*(.*)$")
	if first == nil then
		return nil, nil
	end
	local minutes = tonumber(first)
	if minutes == nil then
		return nil, rest
	end
	if minutes <= 0 then
		return false, "minutes must be a positive number"
	end
	return minutes, more ~= "" and more or nil
end

local function plural(n, what)
	return string.format("%g %s%s", n, what, n == 1 and "" or "s")
end

parley.command("ban", {
	usage = "/ban <user> [minutes] [reason]",
	help = "bans someone from this room (for good, or minutes)",
}, function(user, room, args)
	local target, rest = target_of(room, args,
	    "usage: /ban <user> [minutes] [reason]")
	if target == nil then
		return false, rest, rest:match("^usage") and "bad_request"
		    or "user_not_found"
	end
	local minutes, reason = minutes_reason(rest)
	if minutes == false then
		return false, reason, "bad_request"
	end
	local ok, why, code = room:ban(target, { by = user,
	    minutes = minutes, reason = reason })
	if not ok then
		return false, why, code
	end
	return "banned " .. target.name ..
	    (minutes and (" for " .. plural(minutes, "minute")) or "")
end)

parley.command("unban", {
	usage = "/unban <user>",
	help = "lifts a ban in this room",
}, function(user, room, args)
	local name = take_name(args)
	if name == nil then
		return false, "usage: /unban <user>", "bad_request"
	end
	local ok, why, code = room:unban(name, { by = user })
	if not ok then
		return false, why, code
	end
	return "unbanned " .. name
end)

parley.command("mute", {
	usage = "/mute <user> [minutes]",
	help = "stops someone's messages in this room (for good, or minutes)",
}, function(user, room, args)
	local target, rest = target_of(room, args,
	    "usage: /mute <user> [minutes]")
	if target == nil then
		return false, rest, rest:match("^usage") and "bad_request"
		    or "user_not_found"
	end
	local minutes, reason = minutes_reason(rest)
	if minutes == false or (rest ~= "" and minutes == nil) then
		return false, "minutes must be a positive number", "bad_request"
	end
	local ok, why, code = room:mute(target, { by = user,
	    minutes = minutes, reason = reason })
	if not ok then
		return false, why, code
	end
	target:notice(minutes and string.format("%s muted you for %g minutes",
	    user.name, minutes) or (user.name .. " muted you"), room)
	return "muted " .. target.name
end)

parley.command("unmute", {
	usage = "/unmute <user>",
	help = "lets someone speak again in this room",
}, function(user, room, args)
	local name = take_name(args)
	if name == nil then
		return false, "usage: /unmute <user>", "bad_request"
	end
	local ok, why, code = room:unmute(name, { by = user })
	if not ok then
		return false, why, code
	end
	-- A mute a script gave with the "muted" role ends too.
	local target = parley.user(name)
	if target ~= nil and target:has_role("muted") then
		target:remove_role("muted")
		parley.store["mute_until:" .. target.key] = nil
	end
	if target ~= nil then
		target:notice(user.name .. " unmuted you", room)
	end
	return "unmuted " .. name
end)

local function set_role(user, room, args, role, usage)
	local target, rest = target_of(room, args, usage)
	if target == nil then
		return false, rest, rest:match("^usage") and "bad_request"
		    or "user_not_found"
	end
	-- role_changed, which every member gets, is the answer.
	local ok, why, code = room:set_role(target, role, { by = user })
	if not ok then
		return false, why, code
	end
end

parley.command("op", {
	usage = "/op <user>",
	help = "makes someone a moderator of this room",
}, function(user, room, args)
	return set_role(user, room, args, "moderator", "usage: /op <user>")
end)

parley.command("deop", {
	usage = "/deop <user>",
	help = "takes the moderator role from someone in this room",
}, function(user, room, args)
	return set_role(user, room, args, nil, "usage: /deop <user>")
end)

parley.command("modlog", {
	usage = "/modlog [n]",
	help = "operators: the last n moderation actions (default 10)",
}, function(user, room, args)
	if not is_oper(user) then
		return false, "only operators may read the moderation log",
		    "forbidden"
	end
	local n = tonumber(args:match("^%s*(%d+)")) or 10
	local lines = {}
	for _, r in ipairs(parley.modlog(n)) do
		local line = string.format("%s %s %s (%s): %s %s",
		    os.date("!%Y-%m-%d %H:%M:%S", r.time), r.actor_kind, r.actor,
		    r.action, r.target, r.room and ("in " .. r.room) or "")
		if r.reason then
			line = line .. ": " .. r.reason
		end
		if r.expires and r.expires > 0 then
			line = line .. os.date(" (until %Y-%m-%d %H:%M:%S UTC)",
			    r.expires)
		end
		lines[#lines + 1] = line
	end
	if #lines == 0 then
		return "the moderation log is empty"
	end
	return table.concat(lines, "\n")
end)

-- A muted user may still write directly to an operator (to ask why).
-- The core refuses a muted sender too; this lifts an expired mute first
-- and says for how long.
parley.on("direct", function(user, to)
	local left = muted(user)
	if left == nil or is_oper(to) then
		return
	elseif left == true then
		return false, "you are muted", "forbidden"
	end
	return false, string.format("you are muted for %d more seconds", left),
	    "forbidden"
end, 60)

-- Mutes hold whether or not moderation.lua runs.
parley.on("message", function(user)
	local left = muted(user)
	if left == true then
		return false, "you are muted", "forbidden"
	elseif left then
		return false, string.format("you are muted for %d more seconds",
		    left), "forbidden"
	end
end, 60)
