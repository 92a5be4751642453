-- usernames.lua: rules for the names people pick.
--
-- A worked example of the `username` hook, which runs whenever a client
-- asks for a name: set_username, join_room with a username, and /nick.
-- The core has already checked the protocol's rules (1 to 32 bytes of
-- UTF-8, no control characters, no space at either end), refused
-- invisible, space-like and direction-changing characters, and refused a
-- name that looks like one someone holds: names are compared by their
-- key, parley.name_key(name) (NFKC case folding and the Unicode
-- confusable skeleton, so "aIice", "аlice" in Cyrillic and "ａｌｉｃｅ"
-- all take "alice"'s place). This script narrows the rules:
--
--   * length, counted in characters;
--   * reserved names (admin, server, system, ...), also when written
--     with look-alikes ("Adm1n", "s3rver", "r00t", "ad-min", "аdmin",
--     "ａｄｍｉｎ", "admın").
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

-- A name's key keeps digits other than 0 and 1 (which look like o and l)
-- so that "bob2" and "bob3" stay two names; for reserved names digits
-- standing for letters count too.
local leet = {
	["3"] = "e", ["4"] = "a", ["5"] = "s", ["7"] = "t", ["8"] = "b",
	["!"] = "l", ["@"] = "a", ["$"] = "s",
}

-- For reserved names, separators and trailing digits do not count either:
-- "ad-min", "Admin_" and "admin2" are all "admin".
local function bare(name)
	local s = name:gsub("%d+$", "")
	s = parley.name_key(s) or s
	s = s:gsub("[34578!@$]", leet):gsub("[%s%p]", ""):gsub("%d+$", "")
	return s
end

local reserved = {}
for _, name in ipairs(reserved_names) do
	reserved[bare(name)] = name
end

parley.on("username", function(user, name)
	local length = utf8.len(name) or #name
	if length < min_length or length > max_length then
		return false, string.format("names are %d to %d characters long",
		    min_length, max_length), "invalid_name"
	end
	if ascii_only and not name:match("^[%w _%.%-]+$") then
		return false, "names may use only letters, digits, spaces, "
		    .. "dots, dashes and underscores", "invalid_name"
	end
	if reserved[bare(name)] then
		return false, string.format("%q is reserved", name)
	end
end, 100)
