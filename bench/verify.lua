-- verify-code spread over USERS seeded users (bench/seed.cpp): half the
-- guesses are the user's right code (then the code is consumed and later
-- guesses for that user answer 404), half are wrong (400, then 429).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local users = tonumber(os.getenv("BENCH_USERS") or "100000")
local headers = { ["Content-Type"] = "application/json" }
local counter = 0

function request()
  counter = counter + 1
  local n = math.random(0, users - 1)
  local code = (n * 7919 + 13) % 1000000
  if counter % 2 == 0 then code = (code + 1) % 1000000 end
  local body = string.format('{"user_id":"u%07d","passcode":"%06d"}', n, code)
  return wrk.format("POST", "/verify-code", headers, body)
end
