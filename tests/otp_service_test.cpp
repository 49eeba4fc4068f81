#include "otp/otp_service.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <chrono>
#include <thread>

#include "core/phone.h"
#include "otp_stack.h"

namespace otpd {
namespace {

SendResult Send(OtpStack& s, const std::string& user) {
  SendResult r;
  REQUIRE(s.service->SendCode(user, "127.0.0.1", &r).ok());
  return r;
}

VerifyCodeResult Verify(OtpStack& s, const std::string& user, const std::string& code) {
  VerifyCodeResult r;
  REQUIRE(s.service->VerifyCode(user, code, "127.0.0.1", &r).ok());
  return r;
}

void RawSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  CHECK_MESSAGE(rc == SQLITE_OK, (err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
}

}  // namespace

TEST_CASE("SendCode texts a fresh code that verifies once") {
  OtpStack s;
  SendResult sent = Send(s, "abc");
  CHECK(sent.outcome == SendOutcome::kSent);
  CHECK(sent.phone == "+12015551111");
  REQUIRE(s.sms.count() == 1);
  CHECK(s.sms.messages()[0].to == "+12015551111");
  const std::string code = s.sms.LastCode();
  CHECK(code.size() == 6);
  CHECK(s.sms.messages()[0].body == "Your otpd code is " + code + ". It expires in 5 minutes.");
  CHECK(Verify(s, "abc", code).store.outcome == VerifyOutcome::kOk);
  CHECK(Verify(s, "abc", code).store.outcome == VerifyOutcome::kNotFound);
}

TEST_CASE("User IDs are case-insensitive and come back lower-cased") {
  OtpStack s;
  SendResult sent = Send(s, "ABC");
  CHECK(sent.outcome == SendOutcome::kSent);
  CHECK(sent.user_id == "abc");
  VerifyCodeResult r = Verify(s, "aBc", s.sms.LastCode());
  CHECK(r.user_id == "abc");
  CHECK(r.store.outcome == VerifyOutcome::kOk);
}

TEST_CASE("Unknown user and user without phone: nothing stored, nothing sent") {
  OtpStack s;
  CHECK(Send(s, "nobody").outcome == SendOutcome::kUserNotFound);
  RawSql(s.dir.File("otpd.db"), "INSERT INTO users(user_id, phone) VALUES ('nophone', NULL)");
  CHECK(Send(s, "nophone").outcome == SendOutcome::kPhoneNotFound);
  CHECK(s.sms.count() == 0);
  CHECK(Verify(s, "nophone", "123456").store.outcome == VerifyOutcome::kNotFound);
}

TEST_CASE("A new send replaces the earlier code and its attempt counter") {
  OtpStack s;
  Send(s, "abc");
  const std::string first = s.sms.LastCode();
  CHECK(Verify(s, "abc", WrongCode(first)).store.attempts_remaining == 2);
  s.clock.AdvanceSeconds(30);
  CHECK(Send(s, "abc").outcome == SendOutcome::kSent);
  const std::string second = s.sms.LastCode();
  if (first != second) {
    VerifyCodeResult old = Verify(s, "abc", first);
    CHECK(old.store.outcome == VerifyOutcome::kInvalid);
    CHECK(old.store.attempts_remaining == 2);  // the counter restarted at the new send
  }
  CHECK(Verify(s, "abc", second).store.outcome == VerifyOutcome::kOk);
}

TEST_CASE("Attempts count down 2, 1, 0, then every try is locked until a new send") {
  OtpStack s;
  Send(s, "abc");
  const std::string code = s.sms.LastCode();
  for (int left = 2; left >= 0; left--) {
    VerifyCodeResult r = Verify(s, "abc", WrongCode(code));
    CHECK(r.store.outcome == VerifyOutcome::kInvalid);
    CHECK(r.store.attempts_remaining == left);
  }
  s.clock.AdvanceSeconds(100);
  VerifyCodeResult locked = Verify(s, "abc", code);
  CHECK(locked.store.outcome == VerifyOutcome::kLocked);
  CHECK(locked.retry_after_s == 200);  // until the code's expiry
  CHECK(Verify(s, "abc", WrongCode(code)).store.outcome == VerifyOutcome::kLocked);
  Send(s, "abc");
  CHECK(Verify(s, "abc", s.sms.LastCode()).store.outcome == VerifyOutcome::kOk);
}

TEST_CASE("Expired codes answer kExpired through the grace period, then kNotFound") {
  OtpOptions o;
  o.expiry_ms = 300000;
  o.expired_grace_ms = 600000;
  OtpStack s(o);
  Send(s, "abc");
  const std::string fresh = s.sms.LastCode();
  s.clock.Advance(300000);
  CHECK(Verify(s, "abc", fresh).store.outcome == VerifyOutcome::kExpired);
  s.clock.Advance(599999);
  CHECK(Verify(s, "abc", fresh).store.outcome == VerifyOutcome::kExpired);
  s.clock.Advance(1);
  CHECK(Verify(s, "abc", fresh).store.outcome == VerifyOutcome::kNotFound);
}

TEST_CASE("A code is still good one millisecond before expiry") {
  OtpStack s;
  Send(s, "abc");
  s.clock.Advance(299999);
  CHECK(Verify(s, "abc", s.sms.LastCode()).store.outcome == VerifyOutcome::kOk);
}

TEST_CASE("An SMS failure leaves no code active, not even the earlier one") {
  OtpStack s;
  Send(s, "abc");
  const std::string earlier = s.sms.LastCode();
  s.failing.FailWith(21211);
  s.clock.AdvanceSeconds(30);  // past the resend cooldown
  SendResult r = Send(s, "abc");
  CHECK(r.outcome == SendOutcome::kSmsFailed);
  CHECK(r.receipt.provider_code == 21211);
  CHECK(Verify(s, "abc", earlier).store.outcome == VerifyOutcome::kNotFound);
  s.failing.Heal();
  s.clock.AdvanceSeconds(30);
  CHECK(Send(s, "abc").outcome == SendOutcome::kSent);
  CHECK(Verify(s, "abc", s.sms.LastCode()).store.outcome == VerifyOutcome::kOk);
}

TEST_CASE("Code length and the message template follow the options") {
  OtpOptions o;
  o.code_length = 10;
  o.expiry_ms = 90000;
  o.app_name = "Acme";
  o.message_template = "{app}: {code} ({minutes} min)";
  OtpStack s(o);
  Send(s, "abc");
  const std::string code = s.sms.LastCode();
  CHECK(code.size() == 10);
  CHECK(s.sms.messages()[0].body == "Acme: " + code + " (2 min)");
}

TEST_CASE("Non-digit and wrong-length passcodes are plain wrong codes") {
  OtpStack s;
  Send(s, "abc");
  CHECK(Verify(s, "abc", "abcdef").store.outcome == VerifyOutcome::kInvalid);
  CHECK(Verify(s, "abc", s.sms.LastCode() + "0").store.outcome == VerifyOutcome::kInvalid);
  CHECK(Verify(s, "abc", s.sms.LastCode()).store.outcome == VerifyOutcome::kOk);
}

TEST_CASE("PurgeExpired removes codes past expiry plus grace only") {
  OtpStack s;
  REQUIRE(s.users->Upsert("def", "+12025552222").ok());
  Send(s, "abc");
  s.clock.AdvanceSeconds(500);
  Send(s, "def");
  s.clock.AdvanceSeconds(400);  // abc: expired 600 s ago; def: 100 s ago
  int64_t purged = -1;
  REQUIRE(s.service->PurgeExpired(&purged).ok());
  CHECK(purged == 1);
  CHECK(Verify(s, "def", "000000").store.outcome == VerifyOutcome::kExpired);
}

// ---------------------------------------------------------------------------
// Abuse limits

TEST_CASE("A send refused by a limit stores nothing and texts nothing") {
  OtpStack s;
  Send(s, "abc");
  const std::string first = s.sms.LastCode();
  s.clock.AdvanceSeconds(10);
  SendResult r = Send(s, "abc");
  CHECK(r.outcome == SendOutcome::kRateLimited);
  CHECK(r.limit == SendLimit::kCooldown);
  CHECK(r.retry_after_s == 20);
  CHECK(s.sms.count() == 1);
  CHECK(Verify(s, "abc", first).store.outcome == VerifyOutcome::kOk);  // not replaced
}

TEST_CASE("The hourly cap counts failed SMS too, and retry_after rounds up") {
  OtpOptions options;
  options.send_limits.cooldown_ms = 0;
  options.send_limits.per_user = 2;
  OtpStack s(options);
  s.failing.FailWith(30003);
  CHECK(Send(s, "abc").outcome == SendOutcome::kSmsFailed);
  s.failing.Heal();
  s.clock.Advance(1500);
  CHECK(Send(s, "abc").outcome == SendOutcome::kSent);
  SendResult r = Send(s, "abc");
  CHECK(r.outcome == SendOutcome::kRateLimited);
  CHECK(r.limit == SendLimit::kUser);
  CHECK(r.retry_after_s == 3599);  // 3598.5 s until the failed send is an hour old
}

TEST_CASE("allowed_country_codes: other countries are refused without a send") {
  OtpOptions options;
  options.allowed_country_codes = {"44", "33"};
  OtpStack s(options);
  REQUIRE(s.users->Upsert("uk", "+447400900123").ok());
  REQUIRE(s.users->Upsert("tricky", "+14433333333").ok());  // +1, not +44
  SendResult r = Send(s, "abc");
  CHECK(r.outcome == SendOutcome::kRateLimited);
  CHECK(r.retry_after_s == 3600);
  CHECK(Send(s, "tricky").outcome == SendOutcome::kRateLimited);
  CHECK(s.sms.count() == 0);
  CHECK(Send(s, "uk").outcome == SendOutcome::kSent);
  CHECK(s.sms.count() == 1);
  CHECK(s.service->CountryAllowed("+33612345678"));
  CHECK_FALSE(s.service->CountryAllowed("+4"));
}

TEST_CASE("A user changed with plain SQL between two sends: the next send sees the change") {
  OtpOptions options;
  options.send_limits.cooldown_ms = 0;
  options.templates = {{"es", "Tu codigo es {code}"}};
  OtpStack s(options);
  CHECK(Send(s, "abc").phone == "+12015551111");
  CHECK(Send(s, "abc").phone == "+12015551111");  // the user is remembered now
  RawSql(s.dir.File("otpd.db"), "UPDATE users SET phone = '+12025552222' WHERE user_id = 'abc'");
  SendResult r = Send(s, "abc");
  CHECK(r.outcome == SendOutcome::kSent);
  CHECK(r.phone == "+12025552222");
  REQUIRE(s.sms.count() == 3);
  CHECK(s.sms.messages()[2].to == "+12025552222");
  RawSql(s.dir.File("otpd.db"), "UPDATE users SET locale = 'es' WHERE user_id = 'abc'");
  Send(s, "abc");
  REQUIRE(s.sms.count() == 4);
  CHECK(s.sms.messages()[3].body == "Tu codigo es " + s.sms.LastCode());
  RawSql(s.dir.File("otpd.db"), "DELETE FROM users WHERE user_id = 'abc'");
  CHECK(Send(s, "abc").outcome == SendOutcome::kUserNotFound);
  RawSql(s.dir.File("otpd.db"), "INSERT INTO users (user_id, phone) VALUES ('abc', NULL)");
  CHECK(Send(s, "abc").outcome == SendOutcome::kPhoneNotFound);
  CHECK(s.sms.count() == 4);
}

TEST_CASE("allowed_country_codes: a user whose phone moves across the list is judged anew") {
  OtpOptions options;
  options.send_limits.cooldown_ms = 0;
  options.allowed_country_codes = {"44"};
  OtpStack s(options);
  REQUIRE(s.users->Upsert("uk", "+447400900123").ok());
  CHECK(Send(s, "uk").outcome == SendOutcome::kSent);
  // Out of the list: refused, not sent to the number remembered.
  RawSql(s.dir.File("otpd.db"), "UPDATE users SET phone = '+12015553333' WHERE user_id = 'uk'");
  CHECK(Send(s, "uk").outcome == SendOutcome::kRateLimited);
  CHECK(Send(s, "uk").outcome == SendOutcome::kRateLimited);
  CHECK(s.sms.count() == 1);
  // Back in: sent at once, not refused by the number remembered.
  RawSql(s.dir.File("otpd.db"), "UPDATE users SET phone = '+447400900124' WHERE user_id = 'uk'");
  SendResult r = Send(s, "uk");
  CHECK(r.outcome == SendOutcome::kSent);
  REQUIRE(s.sms.count() == 2);
  CHECK(s.sms.messages()[1].to == "+447400900124");
}

TEST_CASE("Failed verifications across resends throttle the user; retry_after in seconds") {
  OtpOptions options;
  options.max_failures = 4;
  options.send_limits.cooldown_ms = 0;
  OtpStack s(options);
  for (int i = 0; i < 2; i++) {
    const std::string code = (Send(s, "abc"), s.sms.LastCode());
    CHECK(Verify(s, "abc", WrongCode(code)).store.outcome == VerifyOutcome::kInvalid);
    CHECK(Verify(s, "abc", WrongCode(code)).store.outcome == VerifyOutcome::kInvalid);
  }
  s.clock.Advance(500);
  Send(s, "abc");  // a resend does not reset the count
  VerifyCodeResult r = Verify(s, "abc", s.sms.LastCode());
  CHECK(r.store.outcome == VerifyOutcome::kThrottled);
  CHECK(r.retry_after_s == 3600);  // 3599.5 s, rounded up
  s.clock.Advance(3599499);
  Send(s, "abc");
  CHECK(Verify(s, "abc", s.sms.LastCode()).store.outcome == VerifyOutcome::kThrottled);
  s.clock.Advance(1);  // the first failure leaves the window
  CHECK(Verify(s, "abc", s.sms.LastCode()).store.outcome == VerifyOutcome::kOk);
}

TEST_CASE("PurgeExpired keeps history for the longest window") {
  OtpOptions options;
  options.send_limits.per_user = 1;
  OtpStack s(options);
  Send(s, "abc");
  s.clock.AdvanceSeconds(3599);
  int64_t purged = 0;
  REQUIRE(s.service->PurgeExpired(&purged).ok());
  CHECK(Send(s, "abc").outcome == SendOutcome::kRateLimited);  // still counted
  s.clock.AdvanceSeconds(1);
  REQUIRE(s.service->PurgeExpired(&purged).ok());
  CHECK(Send(s, "abc").outcome == SendOutcome::kSent);
}

TEST_CASE("conceal_unknown_users: unknown users look sent, with a stable fake phone") {
  OtpOptions options;
  options.conceal_unknown_users = true;
  OtpStack s(options);
  RawSql(s.dir.File("otpd.db"), "INSERT INTO users(user_id, phone) VALUES ('nophone', NULL)");
  SendResult r = Send(s, "Nobody");
  CHECK(r.outcome == SendOutcome::kSent);
  CHECK(r.concealed);
  CHECK(r.user_id == "nobody");
  CHECK(IsE164(r.phone));
  CHECK(r.phone.size() == std::string("+12015551111").size());
  CHECK(s.sms.count() == 0);
  // Verify answers as for a known user with a code: 400, counting down.
  VerifyCodeResult v = Verify(s, "nobody", "123456");
  CHECK(v.store.outcome == VerifyOutcome::kInvalid);
  CHECK(v.store.attempts_remaining == 2);
  // The limits apply, then the same phone comes back.
  CHECK(Send(s, "nobody").outcome == SendOutcome::kRateLimited);
  s.clock.AdvanceSeconds(30);
  CHECK(Send(s, "nobody").phone == r.phone);
  CHECK(Send(s, "other").phone != r.phone);
  SendResult np = Send(s, "nophone");
  CHECK(np.outcome == SendOutcome::kSent);
  CHECK(np.concealed);
  CHECK(s.sms.count() == 0);
  // Known users are unaffected.
  SendResult known = Send(s, "abc");
  CHECK(known.outcome == SendOutcome::kSent);
  CHECK_FALSE(known.concealed);
  CHECK(s.sms.count() == 1);
}

TEST_CASE("conceal_unknown_users: the fake phone is in the first allowed country") {
  OtpOptions options;
  options.conceal_unknown_users = true;
  options.allowed_country_codes = {"44"};
  OtpStack s(options);
  SendResult r = Send(s, "nobody");
  CHECK(r.outcome == SendOutcome::kSent);
  CHECK(r.phone.rfind("+44", 0) == 0);
}

namespace {

// An SMS provider that takes 40 ms per message, on the fake clock.
class SlowSmsSender : public SmsSender {
 public:
  explicit SlowSmsSender(FakeClock* clock) : clock_(clock) {}
  Status Send(const std::string&, const std::string&, SmsReceipt*) override {
    clock_->AdvanceMonotonicMicros(40000);
    return Status::OK();
  }

 private:
  FakeClock* clock_;
};

}  // namespace

TEST_CASE("conceal_unknown_users: a concealed send takes as long as a real one") {
  OtpOptions options;
  options.conceal_unknown_users = true;
  options.conceal_initial_wait_us = 0;  // no prior: only measured times
  OtpStack s(options);
  SlowSmsSender slow(&s.clock);
  OtpService service(options, s.storage.get(), s.users.get(), &slow, &s.clock, &s.random,
                     &s.hasher);
  SendResult r;
  // Microseconds a send took on the service's monotonic clock.
  const auto took_us = [&service, &r, &s](const std::string& user) {
    const int64_t start = s.clock.MonotonicMicros();
    REQUIRE(service.SendCode(user, "", &r).ok());
    return s.clock.MonotonicMicros() - start;
  };
  CHECK(took_us("nobody") == 0);  // nothing measured yet: no wait
  CHECK(r.concealed);
  CHECK(s.clock.slept_micros() == 0);
  s.clock.AdvanceSeconds(30);
  CHECK(took_us("abc") == 40000);  // the provider's time; the service did not wait
  CHECK_FALSE(r.concealed);
  CHECK(s.clock.slept_micros() == 0);
  CHECK(took_us("nobody") == 40000);  // waited the measured latency instead
  CHECK(r.concealed);
  CHECK(s.clock.slept_micros() == 40000);
}

TEST_CASE("Every send and verify outcome is audited, with a masked phone and no code") {
  OtpStack s;
  Send(s, "ABC");
  const std::string code = s.sms.LastCode();
  Verify(s, "abc", WrongCode(code));
  Verify(s, "abc", code);
  Send(s, "abc");  // within the cooldown
  Send(s, "nobody");
  std::vector<AuditEvent> events;
  REQUIRE(s.audit->Query(AuditQuery{"", 0, 100}, &events).ok());
  REQUIRE(events.size() == 5);
  const char* const expected[][2] = {{"send", "sent"},
                                     {"verify", "invalid_code"},
                                     {"verify", "ok"},
                                     {"send", "rate_limited:cooldown"},
                                     {"send", "user_not_found"}};
  for (size_t i = 0; i < events.size(); i++) {
    INFO(i);
    CHECK(events[i].event == expected[i][0]);
    CHECK(events[i].outcome == expected[i][1]);
    CHECK(events[i].client_ip == "127.0.0.1");
    CHECK(events[i].at_ms == s.clock.NowMillis());
  }
  CHECK(events[0].user_id == "abc");
  CHECK(events[0].masked_phone == "+1*******111");
  CHECK(events[1].masked_phone == "");
  CHECK(events[4].masked_phone == "");
  // The code appears nowhere in the trail.
  std::string raw;
  for (const AuditEvent& e : events) raw += e.user_id + e.masked_phone + e.outcome;
  CHECK(raw.find(code) == std::string::npos);
}

namespace {

TEST_CASE("OtpService: the user's locale picks the template, with the WebOTP line") {
  OtpOptions options;
  options.app_name = "Acme";
  options.templates = {{"es",
                        "Tu c\xC3\xB3"
                        "digo de {app} es {code}"}};
  options.webotp_domain = "login.example.com";
  OtpStack s(options);
  REQUIRE(s.users->Upsert("maria", "+34600000001").ok());
  RawSql(s.dir.File("otpd.db"), "UPDATE users SET locale = 'es-MX' WHERE user_id = 'maria'");
  User maria;
  REQUIRE(s.users->Lookup("MARIA", &maria).ok());
  CHECK(maria.locale == "es-MX");

  REQUIRE(Send(s, "maria").outcome == SendOutcome::kSent);
  const std::string code = s.sms.LastCode();
  CHECK(s.sms.messages().back().body ==
        "Tu c\xC3\xB3"
        "digo de Acme es " +
            code + "\n\n@login.example.com #" + code);
  REQUIRE(Send(s, "abc").outcome == SendOutcome::kSent);  // no locale: the default
  const std::string code2 = s.sms.LastCode();
  CHECK(s.sms.messages().back().body == "Your Acme code is " + code2 +
                                            ". It expires in 5 minutes.\n\n@login.example.com #" +
                                            code2);
}

TEST_CASE("OtpService: templates that cannot fit one segment are reported") {
  OtpOptions options;
  options.code_length = 10;
  options.templates = {{"es", "{code}"}, {"ru", std::string(60, 'x') + "\xD0\x96 {code}"}};
  options.message_template = std::string(150, 'a') + " {code}";  // 161 GSM-7 characters
  OtpStack s(options);
  const std::vector<OversizedTemplate> over = s.service->OversizedTemplates();
  REQUIRE(over.size() == 2);
  CHECK(over[0].locale == "");
  CHECK(over[0].length.gsm7);
  CHECK(over[0].length.units == 161);
  CHECK(over[1].locale == "ru");
  CHECK_FALSE(over[1].length.gsm7);
  CHECK(over[1].length.units == 72);
  OtpStack fine{OtpOptions()};
  CHECK(fine.service->OversizedTemplates().empty());
}

}  // namespace

TEST_CASE("SetOptions: later sends use the new template and length, live") {
  OtpStack s;
  OtpOptions o = s.service->options();
  o.code_length = 8;
  o.message_template = "code {code} from {app}";
  o.app_name = "shop";
  s.service->SetOptions(o);
  Send(s, "abc");
  const std::string code = s.sms.LastCode();
  CHECK(code.size() == 8);
  CHECK(s.sms.messages().back().body == "code " + code + " from shop");
  CHECK(Verify(s, "abc", code).store.outcome == VerifyOutcome::kOk);
}

}  // namespace otpd
