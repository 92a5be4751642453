-- card.lua: the design card's global names, without parley.on.

function on_message(user, room, text)
	if text == "card" then
		return "card hook saw it"
	end
end

function on_join(user, room)
	if room.name == "cardlocked" then
		return false, "card says no"
	end
end

function on_leave(user, room, reason)
	parley.store["card_left:" .. user.name] = reason
end
