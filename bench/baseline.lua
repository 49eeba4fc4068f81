dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.body = '{"user_id":"abc"}'
wrk.headers["Content-Type"] = "application/json"
