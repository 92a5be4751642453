-- moderation.lua: a word filter, flood control and repeated messages.
--
-- A worked example of the `message` hook, which sees every chat message
-- before the room does and decides: pass it (return nothing), change it
-- (return the new text), refuse it (return false, a reason the sender
-- sees, and optionally an error code), or drop it silently (return
-- parley.DROP). It also shows per-user state (user.data), notices, roles
-- and the store.
--
--   * Word filter: the listed words, in any letter case and as whole
--     words, are masked with asterisks, or the message is refused.
--   * Flood control: more than flood_messages messages within
--     flood_seconds (a token bucket: bursts up to flood_messages, then
--     flood_messages per flood_seconds) earns a warning; doing it again
--     while warned mutes the sender for mute_seconds (the room is told).
--   * Repeats: the same text repeat_limit times in a row (within
--     repeat_seconds) is refused.
--
-- Operators (role "oper") are exempt. A mute is the role "muted" plus
-- its end time in the store, under user.key (the account when there is
-- one), so it outlives a reload and, for an account, a reconnect; and
-- commands.lua's /mute and /unmute use the same two.
--
-- Settings (parley.conf), all optional:
--
--   script_settings = {
--     moderation = {
--       words = { "darn", "heck" },  -- default: none
--       word_action = "mask",        -- or "reject"
--       flood_messages = 8,          -- default 8 ...
--       flood_seconds = 10,          -- ... within 10 s
--       mute_seconds = 60,
--       repeat_limit = 3,            -- 0: allow repeats
--       repeat_seconds = 60,
--     },
--   }

local settings = parley.settings
local words = settings.words or {}
local word_action = settings.word_action or "mask"
local flood_messages = tonumber(settings.flood_messages) or 8
local flood_seconds = tonumber(settings.flood_seconds) or 10
local mute_seconds = tonumber(settings.mute_seconds) or 60
local repeat_limit = tonumber(settings.repeat_limit) or 3
local repeat_seconds = tonumber(settings.repeat_seconds) or 60

if word_action ~= "mask" and word_action ~= "reject" then
	error("script_settings.moderation.word_action must be \"mask\" or "
	    .. "\"reject\"")
end

-- Whole-word patterns: %f[%w] is a frontier, the edge of a word.
local patterns = {}
for _, word in ipairs(words) do
	local escaped = word:lower():gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
	patterns[#patterns + 1] = "%f[%w]" .. escaped .. "%f[%W]"
end

-- Returns the text with listed words masked, or nil when none is in it.
-- string.lower changes ASCII letters only, so positions in the lowered
-- text are positions in the original.
local function filter(text)
	local lower, out, found = text:lower(), text, false
	for _, pattern in ipairs(patterns) do
		local from = 1
		while true do
			local s, e = lower:find(pattern, from)
			if s == nil then
				break
			end
			out = out:sub(1, s - 1) .. string.rep("*", e - s + 1)
			    .. out:sub(e + 1)
			found = true
			from = e + 1
		end
	end
	return found and out or nil
end

-- The remaining seconds of a mute, true for one without end, or nil.
local function muted(user)
	if not user:has_role("muted") then
		return nil
	end
	local key = "mute_until:" .. user.key
	local till = parley.store[key]
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

local function mute(user, room, seconds)
	user:add_role("muted")
	parley.store["mute_until:" .. user.key] = parley.time() + seconds
	room:notice(string.format("%s is muted for %d seconds for flooding",
	    user.name, seconds))
	parley.log("info", user.name .. " muted for flooding in " .. room.name)
end

-- A token bucket per user: it holds flood_messages tokens and refills
-- flood_messages every flood_seconds; each message takes one. Constant
-- time and memory, however fast someone sends.
local function flooding(data, now)
	local tokens = data.tokens or flood_messages
	if data.refilled then
		tokens = math.min(flood_messages, tokens +
		    (now - data.refilled) * flood_messages / flood_seconds)
	end
	data.refilled = now
	if tokens < 1 then
		data.tokens = tokens
		return true
	end
	data.tokens = tokens - 1
	return false
end

parley.on("message", function(user, room, text)
	if user:has_role("oper") then
		return
	end
	local left = muted(user)
	if left == true then
		return false, "you are muted", "forbidden"
	elseif left then
		return false, string.format("you are muted for %d more seconds",
		    left), "forbidden"
	end

	local data = user.data
	local now = parley.now()

	if flooding(data, now) then
		if data.warned and now - data.warned < flood_seconds then
			data.warned = nil
			data.tokens = nil
			mute(user, room, mute_seconds)
			return false, string.format("muted for %d seconds for "
			    .. "flooding", mute_seconds)
		end
		data.warned = now
		user:notice(string.format("slow down: more than %d messages in "
		    .. "%d seconds gets you muted", flood_messages, flood_seconds),
		    room)
	end

	if repeat_limit > 0 then
		if text == data.last_text and now - data.last_at < repeat_seconds
		then
			data.repeats = data.repeats + 1
		else
			data.repeats = 1
		end
		data.last_text, data.last_at = text, now
		if data.repeats >= repeat_limit then
			return false, "please do not repeat the same message"
		end
	end

	local masked = filter(text)
	if masked then
		if word_action == "reject" then
			return false, "please mind your language"
		end
		return masked
	end
end, 50)
