-- wrk script: every request asks for a path never asked before (the URL's path, then
-- "-THREAD-COUNT"), so that a cached route misses and stores each time. The -H headers are
-- sent as given. Used by `bench/run.sh stack` for its true-miss run, on both sides.
local threads = 0
local run = tostring(os.time())

function setup(thread)
  threads = threads + 1
  thread:set("prefix", wrk.path .. "-" .. run .. "-" .. threads .. "-")
end

local count = 0

request = function()
  count = count + 1
  return wrk.format(nil, prefix .. count)
end
