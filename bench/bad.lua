dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local headers = { ["Content-Type"] = "application/json" }
function request()
  return wrk.format("POST", "/verify-code", headers, '{"user_id":"u0000001"}')
end
