local text = string.rep("key=value; ", 20)
for k, v in text:gmatch("(%w+)=(%w+)") do print(k, v) end
print(text:gsub("%s+", " "), string.format("%5.2f %q", 1.5, "x\n"), ("abc"):rep(3, ","))
print(text:find("value", 1, true), table.concat({1, 2, 3}, "-"))
