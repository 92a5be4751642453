-- hooks.lua: a test script for tests/integration/test_lua.py. Every hook
-- reacts to magic names and texts, so that each path (pass, reject,
-- rewrite, drop, stop) can be driven from a WebSocket client; commands
-- expose the API (handles, user.data, the store, timers, config).

local function note(key, value)
	parley.store[key] = value
end

-- connect: refused while the store says so (set by /refuse-next)
parley.on("connect", function(user)
	if parley.store.refuse_next then
		parley.store.refuse_next = nil
		return false, "closed for testing"
	end
end)

-- username: reject, rewrite, stop; a second hook refuses "forbidden"
parley.on("username", function(user, name)
	if name:find("^reject%-") then
		return false, "no rejects here"
	elseif name:find("^code%-") then
		return false, "bad name", "invalid_name"
	elseif name:find("^rewrite%-") then
		return "rewritten-" .. name:sub(9)
	elseif name:find("^stop%-") then
		return parley.STOP
	elseif name:find("^badrewrite%-") then
		return " leading space"
	end
end, 10)

parley.on("username", function(user, name)
	if name:find("forbidden") then
		return false, "second hook says no"
	end
end, 5)

parley.on("create_room", function(user, name)
	if name:find("^nope%-") then
		return false, "no such rooms"
	elseif name:find("^drop%-") then
		return parley.DROP
	end
end)

parley.on("join", function(user, room)
	if room.name == "locked" then
		return false, "the room is locked"
	end
end)

parley.on("message", function(user, room, text)
	if text == "reject" then
		return false, "no rejects"
	elseif text == "ratelimit" then
		return false, "slow", "rate_limited"
	elseif text:find("^upper:") then
		return text:sub(7):upper()
	elseif text == "drop" then
		return parley.DROP
	elseif text:find("^stop") then
		return parley.STOP
	elseif text == "empty" then
		return ""
	elseif text == "toolong" then
		return string.rep("x", parley.config.max_message_bytes + 1)
	elseif text == "badutf8" then
		return "\xff\xfe"
	elseif text == "badtype" then
		return 42
	elseif text == "badcode" then
		return false, "x", "no_such_code"
	end
end, 10)

-- a lower hook: stop must keep it from running
parley.on("message", function(user, room, text)
	if text:find("^stop") or text:find("^chain") then
		return text .. " [low]"
	end
end, 1)

parley.on("leave", function(user, room, reason)
	note("left:" .. user.name .. ":" .. room.name, reason)
	return false -- ignored: leave hooks cannot refuse
end)

parley.on("disconnect", function(user, reason)
	note("gone:" .. user.name, reason)
	note("gone_data:" .. user.name, user.data.count or 0)
end)

-- post: sees every message about to be posted, the scripts' own too
parley.on("post", function(user, room, text, sender, action)
	note("post:" .. text, (user and user.name or "nil") .. "|" .. sender ..
	    "|" .. tostring(action))
	if text:find("^postdrop") then
		return parley.DROP
	elseif text:find("^postrefuse") then
		return false
	end
end)

parley.on("start", function()
	note("started", (parley.store.started or 0) + 1)
end)

parley.on("tick", function()
	note("ticks", (parley.store.ticks or 0) + 1)
end)

-- commands --------------------------------------------------------------

parley.command("echo", { usage = "/echo <text>", help = "says it back" },
    function(user, room, args)
	return args
end)

parley.command("get", function(user, room, args)
	local v = parley.store[args]
	return v == nil and "nil" or tostring(v)
end)

parley.command("set", function(user, room, args)
	local k, v = args:match("^(%S+)%s+(.*)$")
	parley.store[k] = tonumber(v) or v
	return "ok"
end)

parley.command("refuse-next", function()
	parley.store.refuse_next = true
	return "ok"
end)

-- name keys and the refused characters, as a script sees them
parley.command("namekey", function(user, room, args)
	local key, why = parley.name_key(args)
	local ok, why2 = parley.name_check(args)
	local found = parley.user(args)
	return string.format("%s|%s|%s|%s|%s", tostring(key), tostring(why),
	    tostring(ok), tostring(why2), found and found.name or "none")
end)

parley.command("ctx", function(user, room, args, request)
	return string.format("%s %s %s", request.command, type(request.id),
	    tostring(request.id))
end)

parley.command("err", function()
	return false, "bad thing", "forbidden"
end)

parley.command("count", function(user)
	user.data.count = (user.data.count or 0) + 1
	return tostring(user.data.count)
end)

parley.command("whoami", function(user, room)
	local rooms = {}
	for _, r in ipairs(user.rooms) do
		rooms[#rooms + 1] = r.name
	end
	table.sort(rooms)
	return string.format("%s %d %s %s roles=%s rooms=%s same=%s",
	    user.name, user.id, user.address, tostring(user.connected),
	    table.concat(user.roles, ","), table.concat(rooms, ","),
	    tostring(parley.user(user.name) == user))
end)

parley.command("room", function(user, room)
	local names = {}
	for _, m in ipairs(room.members) do
		names[#names + 1] = m.name
	end
	local owner = room.owner
	return string.format("%s count=%d owner=%s members=%s has=%s",
	    room.name, room.count, owner and owner.name or "-",
	    table.concat(names, ","), tostring(room:has(user)))
end)

parley.command("rooms", function()
	local names = {}
	for _, r in ipairs(parley.rooms()) do
		names[#names + 1] = r.name
	end
	return table.concat(names, ",")
end)

parley.command("mkroom", function(user, room, args)
	local r, why, code = parley.create_room(args)
	if r == nil then
		return false, why, code
	end
	return "made " .. r.name
end)

parley.command("serversay", function(user, room, args)
	room:say(args)
end)

parley.command("roomnotice", function(user, room, args)
	room:notice(args)
end)

parley.command("rename", function(user, room, args)
	local ok, why, code = user:rename(args)
	if not ok then
		return false, why, code
	end
	return "renamed"
end)

parley.command("kickme", function(user, room, args)
	user:kick(room, args)
end)

parley.command("role", function(user, room, args)
	local op, role = args:match("^(%S+)%s+(%S+)$")
	if op == "add" then
		user:add_role(role)
	elseif op == "remove" then
		user:remove_role(role)
	end
	return tostring(user:has_role(role))
end)

parley.command("after", function(user, room, args)
	parley.after(tonumber(args) or 0.1, function()
		user:notice("timer fired", room)
	end)
	return "armed"
end)

parley.command("every", function(user, room)
	local n = 0
	local t
	t = parley.every(0.05, function()
		n = n + 1
		if n == 3 then
			t:cancel()
			user:notice("every fired 3 times, pending=" ..
			    tostring(t.pending), room)
		end
	end)
	return "armed"
end)

parley.command("cancel", function(user, room)
	local t = parley.after(0.1, function()
		user:notice("cancelled timer fired", room)
	end)
	t:cancel()
	return "cancelled"
end)

parley.command("cfg", function(user, room, args)
	local v = parley.config[args]
	if type(v) == "table" then
		return table.concat(v, ",")
	end
	return tostring(v)
end)

parley.command("setcfg", function()
	parley.config.port = 1
end)

parley.command("settings", function()
	return tostring(parley.settings.greeting)
end)

parley.command("storeall", function()
	local keys = {}
	for k in pairs(parley.store) do
		keys[#keys + 1] = k
	end
	table.sort(keys)
	return table.concat(keys, ",")
end)

parley.command("sandbox", function()
	local bad = {}
	local function expect(cond, what)
		if not cond then
			bad[#bad + 1] = what
		end
	end
	expect(io == nil, "io")
	expect(debug == nil, "debug")
	expect(package == nil and require == nil, "package")
	expect(dofile == nil and loadfile == nil, "dofile")
	expect(collectgarbage == nil, "collectgarbage")
	expect(os.execute == nil and os.exit == nil and os.getenv == nil
	    and os.remove == nil, "os")
	expect(type(os.time()) == "number" and type(os.clock()) == "number"
	    and type(os.date("%Y")) == "string", "os clock")
	expect(string.dump == nil and ("").dump == nil, "string.dump")
	expect(getmetatable("") == false, "string metatable")
	local f, err = load("\27Lua")
	expect(f == nil and tostring(err):find("binary"), "bytecode")
	expect(load("return x", "t", "t", { x = 5 })() == 5, "load env")
	expect(load("return parley.script")() == "hooks", "load default env")
	expect(not pcall(setmetatable, {}, { __gc = function() end }),
	    "__gc")
	expect(pcall(setmetatable, {}, { __index = {} }), "setmetatable")
	expect(_G == _ENV, "_G")
	expect(not pcall(function() getmetatable("").__index.upper = nil end),
	    "string lib")
	return #bad == 0 and "sandbox ok" or ("leaks: " .. table.concat(bad, " "))
end)

-- a hook registered late, from a command, works at once
parley.command("late", function()
	parley.on("message", function(user, room, text)
		if text == "late" then
			return "late hook saw it"
		end
	end)
	return "hooked"
end)
