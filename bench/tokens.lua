-- tokens.lua: wrk script that sends "Authorization: Bearer <token>" with the
-- tokens of a file (one per line), cycling through them in order.
--
--   wrk -t2 -c32 -d4s --latency -s bench/tokens.lua http://127.0.0.1:PORT/ -- tokens.txt
--
-- Every request string is formatted once in init(), so the per-request Lua
-- work is a table lookup and is the same whatever the number of tokens.
-- Each thread starts at a different offset so that threads do not send the
-- same token at the same moment.

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local requests = {}
local count = 0
local pos = 0

function init(args)
  local path = args[1]
  if path == nil then
    error("tokens.lua: pass the token file after --")
  end
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if #line > 0 then
      count = count + 1
      requests[count] = wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. line })
    end
  end
  f:close()
  if count == 0 then
    error("tokens.lua: no token in " .. path)
  end
  pos = ((id or 0) * 7919) % count
end

function request()
  pos = pos + 1
  if pos > count then
    pos = 1
  end
  return requests[pos]
end
