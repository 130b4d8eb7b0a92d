local v = json.decode('{"a":[1,2.5,"x",true,null],"b":{},"c":[]}')
local s = json.encode(v)
local y = yaml.decode(yaml.encode(v))
log(s, #y.a, tostring(y.b))
