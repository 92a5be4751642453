-- gate.lua: a connect script for tests/integration/test_auth.py, and the
-- shape of one that admits only requests carrying a site's session
-- cookie. Here the "site" is the cookie's own text: session=good-NAME
-- admits NAME (shown capitalised, an operator), session=banned-... is
-- forbidden (403), session=boom makes the hook fail (refused: 500), a
-- request with ?guest=1 comes in as a guest, anything else is 401.

parley.on("connect", function(user, request)
	local session = request.cookies.session
	if session == "boom" then
		error("the session store is down")
	end
	if session and session:find("^banned%-") then
		return false, "this session is banned", "forbidden"
	end
	local name = session and session:match("^good%-(%l+)$")
	if name then
		return { account = name, name = name:sub(1, 1):upper() .. name:sub(2),
		    roles = { "operator" } }
	end
	if request.params.guest == "1" then
		return
	end
	return false, "log in to the site first: no session cookie", "unauthorized"
end)
