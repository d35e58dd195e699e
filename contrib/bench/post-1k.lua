-- wrk script for peers.sh (WRK_SCRIPT=post-1k.lua, BODIES=post): a POST with
-- a 1 KiB request body (Content-Length) to the URL's path, and, as in
-- vary-user.lua, a different X-User-Id on every request so that a sticky
-- per-user splitter sees many users. The origins answer /post with a 3-byte
-- 200, so the request body is most of the bytes each proxy moves.
local body = string.rep("0123456789abcdef", 64)   -- 1024 bytes
local n = 0
request = function()
   n = n + 1
   return wrk.format("POST", nil, {
      ["X-User-Id"] = "u" .. (n % 1000003),
      ["Content-Type"] = "application/octet-stream",
   }, body)
end
