local ok, err = pcall(function() local t = {} while true do t[#t + 1] = ("x"):rep(100) end end)
print(ok, err)
