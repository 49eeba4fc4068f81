#include "twilio_sign.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "test_util.h"

namespace otpd {

namespace {
constexpr char kScript[] =
    "import base64, hashlib, hmac, json, sys\n"
    "a = json.load(open(sys.argv[1], encoding='utf-8'))\n"
    "data = a['url'] + ''.join(k + v for k, v in sorted(a['params']))\n"
    "mac = hmac.new(a['token'].encode(), data.encode(), hashlib.sha1).digest()\n"
    "print(base64.b64encode(mac).decode())\n";
}  // namespace

std::string PythonTwilioSignature(const std::string& token, const std::string& url,
                                  const std::vector<std::pair<std::string, std::string>>& params) {
  TempDir dir;
  nlohmann::json args = {{"token", token}, {"url", url}, {"params", nlohmann::json::array()}};
  for (const auto& [k, v] : params) args["params"].push_back({k, v});
  std::ofstream(dir.File("args.json")) << args.dump();
  std::ofstream(dir.File("sign.py")) << kScript;
  const std::string cmd = "python3 " + dir.File("sign.py") + " " + dir.File("args.json");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("cannot run python3");
  char buf[256] = {};
  std::string out;
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  if (pclose(p) != 0 || out.empty()) throw std::runtime_error("python3 signing failed");
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace otpd
