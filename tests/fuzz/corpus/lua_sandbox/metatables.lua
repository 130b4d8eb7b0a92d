local T = setmetatable({}, {__index = function(t, k) return k * 2 end, __tostring = function() return "T" end})
print(T[21], tostring(T), getmetatable(""), select("#", table.unpack({1, 2, 3})))
local list = json.array({3, 1, 2}) table.sort(list) table.insert(list, 4) print(json.encode(list))
sleep(1) error({code = 1})
