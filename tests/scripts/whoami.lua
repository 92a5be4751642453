-- whoami.lua: a test script for tests/integration/test_accounts.py: says
-- who the user is and who owns the room, as scripts see them.
--   /whoami   "account=A authenticated=B key=K owner_account=O owner=ID"

parley.command("whoami", {}, function(user, room)
	return string.format("account=%s authenticated=%s key=%s "
	    .. "owner_account=%s owner=%d", tostring(user.account),
	    tostring(user.authenticated), user.key,
	    tostring(room.owner_account), room.owner_id)
end)
