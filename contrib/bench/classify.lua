-- wrk script for the classify job of run.sh (peers.sh WRK_SCRIPT=classify.lua,
-- BODIES=mix): a realistic mix of requests for a 10-route plan
-- (turnout-classify.yaml.in, haproxy-classify.cfg.in). Each request combines
--   a User-Agent      13 real ones: desktops, phones, a tablet, TVs, a
--                     console, crawlers (their class in conf/devices.yaml
--                     in the comments);
--   X-Forwarded-For   11 cases: addresses in 8 countries of the test GeoIP
--                     database (tests/unit/data/make-geo-mmdb.pl), one with
--                     a client-written entry on its left, one outside the
--                     database, and none at all;
--   host, path, method 7 cases (GETs of pages, API calls, static files,
--                     POSTs with a 256-byte body, one of them an upload);
--   X-User-Tier       beta (the beta segment) 1 in 17, other tiers or none;
--   Cookie            tn_group=staff-... or qa-... (the staff segment) 2 in
--                     19, other cookies, or none;
--   X-User-Id         a new one every request (as vary-user.lua), so that
--                     turnout's sticky split sees many users.
-- The list lengths (13, 11, 7, 17, 19) are pairwise coprime, so request n
-- takes entry n mod len of each list and every combination comes once in
-- 323 323 requests: each fraction is exact over a whole run, and the same
-- for every row. The origins answer every path with the 1 KiB body
-- (backend-nginx.conf.in). Share of requests each route takes: beta 5.9 %,
-- staff 9.9, bots 13.0, upload 10.2, api-v2 20.4, tv-de 2.0, tv-eu 2.0,
-- mobile-apac 3.0, sweden 2.7, default 31.0; so the share that should reach
-- "new" is 28.90 % + 0.3096 x the default route's percent (32.0 % at 10 %).
-- Change a list and these figures change: docs/benchmark.md says how they
-- were computed.

local uas = {
   -- desktop
   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
   "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
   "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
   -- phone
   "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
   "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
   "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
   -- tablet (Galaxy Tab S9: Android without "Mobile")
   "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
   -- smart-tv: Samsung Tizen, LG webOS, Amazon Fire TV stick
   "Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) 94.0.4606.31/7.0 TV Safari/537.36",
   "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/94.0.4606.128 Safari/537.36 WebAppManager",
   "Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633.3445N; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.230 Mobile Safari/537.36",
   -- console
   "Mozilla/5.0 (PlayStation; PlayStation 5/8.20) AppleWebKit/605.1.15 (KHTML, like Gecko)",
   -- bot: Googlebot smartphone (says "Android ... Mobile"), bingbot
   "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.118 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
   "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
}

local xffs = {
   "93.184.216.34",              -- DE, EU (subdivision BY)
   "198.51.100.4, 93.184.1.1",   -- DE: the right-most entry is the client's
   "89.160.20.5",                -- SE, EU
   "81.2.69.142",                -- GB, EU
   "175.16.199.9",               -- CN, AS
   "202.196.224.7",              -- PH, AS
   "1.128.0.5",                  -- AU, OC
   "216.160.83.60",              -- US, NA
   "186.30.236.10",              -- CO, SA
   "192.0.2.7",                  -- not in the database
   false,                        -- no X-Forwarded-For (the peer, 127.0.0.1: not in it)
}

local post_body = string.rep("k=v&", 64)   -- 256 bytes
local reqs = {     -- method, Host, path (and query)
   { "GET",  "www.example.com",    "/" },
   { "GET",  "www.example.com",    "/products/12345?ref=home" },
   { "GET",  "api.example.com",    "/v2/items?page=2" },
   { "GET",  "api.example.de:443", "/v2/users/42/orders" },
   { "POST", "api.example.com",    "/v1/events" },
   { "POST", "www.example.com",    "/upload/photo" },
   { "GET",  "static.example.com", "/static/app.3f9c2e.js" },
}

local tiers = {}   -- 17: beta once, free 3 times, plus twice, absent otherwise
tiers[1] = "beta"
tiers[2], tiers[3], tiers[4] = "free", "free", "free"
tiers[5], tiers[6] = "plus", "plus"

local cookies = {} -- 19: staff and qa once each, another group once, other cookies 9 times
cookies[1] = "sid=%d; tn_group=staff-7"
cookies[2] = "tn_group=qa-2; sid=%d"
cookies[3] = "sid=%d; tn_group=control"
for i = 4, 12 do cookies[i] = "sid=%d; consent=1; theme=dark" end

local n = 0
request = function()
   n = n + 1
   local r = reqs[n % #reqs + 1]
   local h = {
      ["Host"] = r[2],
      ["User-Agent"] = uas[n % #uas + 1],
      ["X-User-Id"] = "u" .. (n % 1000003),
   }
   local xff = xffs[n % #xffs + 1]
   if xff then h["X-Forwarded-For"] = xff end
   local tier = tiers[n % 17 + 1]
   if tier then h["X-User-Tier"] = tier end
   local cookie = cookies[n % 19 + 1]
   if cookie then h["Cookie"] = string.format(cookie, n) end
   if r[1] == "POST" then
      h["Content-Type"] = "application/x-www-form-urlencoded"
      return wrk.format("POST", r[3], h, post_body)
   end
   return wrk.format("GET", r[3], h)
end
