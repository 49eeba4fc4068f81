-- send-code spread over USERS seeded users.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local users = tonumber(os.getenv("BENCH_USERS") or "100000")
local headers = { ["Content-Type"] = "application/json" }

function request()
  local n = math.random(0, users - 1)
  return wrk.format("POST", "/send-code", headers, string.format('{"user_id":"u%07d"}', n))
end
