#include "otp_stack.h"

#include <stdexcept>

namespace otpd {

namespace {
void Check(const Status& s) {
  if (!s.ok()) throw std::runtime_error(s.ToString());
}
}  // namespace

OtpStack::OtpStack(const OtpOptions& options, const HttpApiOptions& api_options) {
  SqliteOptions db_options;
  db_options.path = dir.File("otpd.db");
  Check(OpenSqliteDb(db_options, &db));
  Check(NewSqliteStorage(db, &clock, &storage));
  Check(NewSqliteUserDirectory(db, &users));
  Check(NewSqliteAuditLog(db, &clock, &audit));
  Check(users->Upsert("abc", "+11111111111"));
  service.reset(new OtpService(options, storage.get(), users.get(), &failing, &clock, &random,
                               &hasher, audit.get()));
  api.reset(new HttpApi(service.get(), storage.get(), api_options));
}

HttpAnswer OtpStack::Post(const std::string& path, const std::string& body) {
  return api->Handle(HttpRequest{"POST", path, body, "127.0.0.1"});
}

std::string OtpStack::SendAndRead(const std::string& user) {
  HttpAnswer a = Post("/send-code", "{\"user_id\":\"" + user + "\"}");
  if (a.status != 200) throw std::runtime_error("send-code answered " + a.body);
  return sms.LastCode();
}

}  // namespace otpd
