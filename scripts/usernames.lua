-- usernames.lua: rules for the names people pick.
--
-- A worked example of the `username` hook, which runs whenever a client
-- asks for a name: set_username, join_room with a username, and /nick.
-- The core has already checked the protocol's rules (1 to 32 bytes of
-- UTF-8, no control characters, no space at either end, not taken when
-- ASCII letters are folded); this script narrows them:
--
--   * length, counted in characters;
--   * no invisible or direction-changing characters (zero-width spaces,
--     bidi overrides, ...), which let one name look like another;
--   * reserved names (admin, server, system, ...), also when written
--     with look-alikes ("Adm1n", "s3rver", "r00t", "ad-min");
--   * no impersonation of someone connected: a name that looks like an
--     existing user's once look-alikes are folded ("aIice" for "alice",
--     "rnallory" for "mallory", "b0b" for "bob") is refused.
--
-- Settings (parley.conf), all optional:
--
--   script_settings = {
--     usernames = {
--       min_length = 2,              -- characters; default 1
--       max_length = 24,             -- characters; default 32
--       ascii_only = true,           -- letters, digits, space, . _ -
--       reserved = { "admin", ... }, -- replaces the built-in list
--       also_reserved = { "acme" },  -- added to it
--     },
--   }
--
-- A hook returns nothing to let the name through, or false and a reason
-- (and optionally an error code) to refuse it; the client gets error
-- `invalid_name` or `rejected` with that reason as its message.

local settings = parley.settings
local min_length = tonumber(settings.min_length) or 1
local max_length = tonumber(settings.max_length) or 32
local ascii_only = settings.ascii_only == true

local reserved_names = settings.reserved or {
	"admin", "administrator", "root", "server", "system", "operator",
	"moderator", "mod", "sysop", "staff", "support", "parley",
}
for _, name in ipairs(settings.also_reserved or {}) do
	reserved_names[#reserved_names + 1] = name
end

-- Characters that draw nothing or reorder what follows: soft hyphen,
-- combining grapheme joiner, Arabic letter mark, Hangul fillers, Mongolian
-- vowel separator, zero-width and bidi controls, word joiners, variation
-- selectors, the byte order mark and tag characters.
local invisible = {
	{ 0x00AD, 0x00AD }, { 0x034F, 0x034F }, { 0x061C, 0x061C },
	{ 0x115F, 0x1160 }, { 0x17B4, 0x17B5 }, { 0x180B, 0x180F },
	{ 0x200B, 0x200F }, { 0x202A, 0x202E }, { 0x2060, 0x206F },
	{ 0x3164, 0x3164 }, { 0xFE00, 0xFE0F }, { 0xFEFF, 0xFEFF },
	{ 0xFFA0, 0xFFA0 }, { 0xFFF0, 0xFFFB }, { 0xE0000, 0xE0FFF },
}

local function has_invisible(name)
	for _, cp in utf8.codes(name) do
		for _, range in ipairs(invisible) do
			if cp >= range[1] and cp <= range[2] then
				return true
			end
		end
	end
	return false
end

-- Look-alikes, folded to one spelling. Digits map to distinct letters,
-- so names that differ only in their numbers stay different.
local fold = {
	["0"] = "o", ["1"] = "l", ["3"] = "e", ["4"] = "a", ["5"] = "s",
	["7"] = "t", ["8"] = "b", ["i"] = "l", ["|"] = "l", ["!"] = "l",
	["@"] = "a", ["$"] = "s",
}

-- The "skeleton" of a name: what it looks like, more or less.
local function skeleton(name)
	local s = name:lower()
	s = s:gsub("rn", "m"):gsub("vv", "w"):gsub("cl", "d")
	s = s:gsub("[013578i|!@$]", fold)
	return s
end

-- For reserved names, separators and trailing digits do not count either:
-- "ad-min", "Admin_" and "admin2" are all "admin".
local function bare(name)
	local s = name:lower():gsub("%d+$", "")
	s = skeleton(s):gsub("[%s%p]", "")
	return s
end

local reserved = {}
for _, name in ipairs(reserved_names) do
	reserved[bare(name)] = name
end

-- skeleton -> id of the user who had a name with it, checked again on
-- use (the user may have left or taken another name since). Guests are
-- not in it: there may be many thousands of them, most never pick a
-- name, and their names ("guest-" and digits, given by the server, which
-- pass no username hook) can be found from a skeleton instead.
local holders = {}

local function remember(user, name)
	if not name:match("^guest%-%d+$") then
		holders[skeleton(name)] = user.id
	end
end

-- Digits as skeleton() folds them, back to the digits.
local unfold = {
	o = "0", l = "1", e = "3", a = "4", s = "5", t = "7", b = "8",
}

-- The connected guest whose name has the skeleton skel, if any.
local function guest_holder(skel)
	local digits = skel:match("^guest%-([%dolestab]+)$")
	if digits == nil then
		return nil
	end
	local user = parley.user("guest-" .. digits:gsub("[olestab]", unfold))
	if user ~= nil and skeleton(user.name) == skel then
		return user
	end
	return nil
end

local function holder(skel, me)
	local guest = guest_holder(skel)
	if guest ~= nil and guest.id ~= me.id then
		return guest
	end
	local id = holders[skel]
	if id == nil or id == me.id then
		return nil
	end
	local other = parley.user(id)
	if other ~= nil and skeleton(other.name) == skel then
		return other
	end
	holders[skel] = nil
	return nil
end

-- Whoever is connected when the script (re)loads.
for _, user in ipairs(parley.users()) do
	remember(user, user.name)
end

parley.on("disconnect", function(user)
	local skel = skeleton(user.name)
	if holders[skel] == user.id then
		holders[skel] = nil
	end
end)

parley.on("username", function(user, name)
	local length = utf8.len(name) or #name
	if length < min_length or length > max_length then
		return false, string.format("names are %d to %d characters long",
		    min_length, max_length), "invalid_name"
	end
	if has_invisible(name) then
		return false, "names may not contain invisible characters",
		    "invalid_name"
	end
	if ascii_only and not name:match("^[%w _%.%-]+$") then
		return false, "names may use only letters, digits, spaces, "
		    .. "dots, dashes and underscores", "invalid_name"
	end
	local taken = reserved[bare(name)]
	if taken then
		return false, string.format("%q is reserved", name)
	end
	local other = holder(skeleton(name), user)
	if other then
		return false, string.format("%q looks too much like %s's name",
		    name, other.name)
	end
	remember(user, name)
end, 100)
