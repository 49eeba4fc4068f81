// Voice and WhatsApp through Twilio (sms/twilio_channels.cpp) against the
// fake Twilio over TLS: the exact request of each channel, the answers,
// and that neither a URL nor a log line carries the code. Then the same
// through the real binary.
#include "sms/twilio_channels.h"

#include <doctest/doctest.h>
#include <otpd_httplib.h>

#include <nlohmann/json.hpp>

#include "fake_twilio.h"
#include "otp/channel_options.h"
#include "otp/sms.h"
#include "otp_stack.h"
#include "otpd_process.h"
#include "test_tls.h"
#include "test_util.h"

namespace otpd {
namespace {

constexpr char kSid[] = "AC0123456789abcdef0123456789abcdef";

struct TlsFake {
  TempDir dir;
  TestCa ca{dir.path(), "channels"};
  FakeTwilio fake{ca.Issue("server", "IP:127.0.0.1,DNS:localhost")};
};

TwilioOptions Options(const TlsFake& t) {
  TwilioOptions o;
  o.account_sid = kSid;
  o.auth_token = "token-0123456789abcdef";
  o.from = "+12085551111";
  o.api_base = t.fake.base();
  o.ca_file = t.ca.cert_file();
  o.connect_timeout_ms = 1000;
  o.timeout_ms = 3000;
  return o;
}

std::unique_ptr<SmsSender> ChannelSender(const TwilioOptions& o,
                                         const TwilioChannelOptions& channels) {
  std::unique_ptr<SmsSender> sms, sender;
  Status s = NewTwilioSmsSender(o, &sms);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  s = NewTwilioChannelSender(o, channels, std::move(sms), &sender);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return sender;
}

const TwilioChannelOptions kWhatsApp{"+14155238886", "HX0123456789abcdef0123456789abcdef"};

}  // namespace

TEST_CASE("twilio channels: TwiML says the script twice, escaped, in the language") {
  CHECK(VoiceTwiml("Your <b>&\"'</b> code is 1, 2.", "es-MX") ==
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Pause length=\"1\"/>"
        "<Say language=\"es-MX\">Your &lt;b&gt;&amp;&quot;&apos;&lt;/b&gt; code is 1, 2.</Say>"
        "<Pause length=\"2\"/>"
        "<Say language=\"es-MX\">Your &lt;b&gt;&amp;&quot;&apos;&lt;/b&gt; code is 1, 2.</Say>"
        "</Response>");
  CHECK(XmlEscape(std::string("a\x01"
                              "b\tc\n",
                              6)) == "ab\tc\n");
  CHECK(XmlEscape("\"><Hangup/>") == "&quot;&gt;&lt;Hangup/&gt;");
}

TEST_CASE("twilio channels: SayLanguage picks the tag, or the language's main one") {
  CHECK(SayLanguage("es-MX") == "es-MX");
  CHECK(SayLanguage("es_mx") == "es-MX");
  CHECK(SayLanguage("es") == "es-ES");
  CHECK(SayLanguage("es-AR") == "es-ES");
  CHECK(SayLanguage("pt") == "pt-BR");
  CHECK(SayLanguage("EN-gb") == "en-GB");
  CHECK(SayLanguage("no") == "nb-NO");
  CHECK(SayLanguage("de-AT") == "de-DE");
  CHECK(SayLanguage("th") == "");
  CHECK(SayLanguage("") == "");
  CHECK(SayLanguage("e") == "");
}

TEST_CASE("twilio channels: WhatsApp variables and addresses") {
  CHECK(WhatsAppVariables("012345") == R"({"1":"012345"})");
  CHECK(WhatsAppAddress("+14155550123") == "whatsapp:+14155550123");
  CHECK(WhatsAppAddress("whatsapp:+14155550123") == "whatsapp:+14155550123");
}

TEST_CASE("twilio channels: a voice call posts To, From and the TwiML to Calls.json") {
  TlsFake t;
  auto sender = ChannelSender(Options(t), TwilioChannelOptions{});
  CHECK(sender->Supports(Channel::kVoice));
  CHECK_FALSE(sender->Supports(Channel::kWhatsApp));  // no content SID
  CodeMessage m;
  m.channel = Channel::kVoice;
  m.code = "042917";
  m.text = "Your otpd code is 0, 4, 2, 9, 1, 7.";
  m.locale = "en-US";
  SmsReceipt receipt;
  Status s = sender->SendCode("+12015551111", m, &receipt);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(receipt.provider == "twilio");
  CHECK(receipt.provider_id == "SM0123456789abcdef0123456789abcdef");
  const auto reqs = t.fake.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].path == std::string("/2010-04-01/Accounts/") + kSid + "/Calls.json");
  CHECK(reqs[0].content_type == "application/x-www-form-urlencoded");
  CHECK(reqs[0].form.size() == 3);
  CHECK(reqs[0].form.at("To") == "+12015551111");
  CHECK(reqs[0].form.at("From") == "+12085551111");
  CHECK(reqs[0].form.at("Twiml") == VoiceTwiml(m.text, "en-US"));
  CHECK(reqs[0].path.find("042917") == std::string::npos);
  CHECK(reqs[0].path.find("0, 4") == std::string::npos);
}

TEST_CASE("twilio channels: WhatsApp posts the template with the code in ContentVariables") {
  TlsFake t;
  TwilioOptions o = Options(t);
  o.status_callback = "https://otp.example.com/twilio/status";
  auto sender = ChannelSender(o, kWhatsApp);
  CHECK(sender->Supports(Channel::kWhatsApp));
  CodeMessage m;
  m.channel = Channel::kWhatsApp;
  m.code = "555123";
  m.text = "Your otpd code is 555123.";
  SmsReceipt receipt;
  Status s = sender->SendCode("+5511912345678", m, &receipt);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  const auto reqs = t.fake.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].path == std::string("/2010-04-01/Accounts/") + kSid + "/Messages.json");
  CHECK(reqs[0].form.size() == 5);
  CHECK(reqs[0].form.at("To") == "whatsapp:+5511912345678");
  CHECK(reqs[0].form.at("From") == "whatsapp:+14155238886");
  CHECK(reqs[0].form.at("ContentSid") == "HX0123456789abcdef0123456789abcdef");
  CHECK(reqs[0].form.at("ContentVariables") == R"({"1":"555123"})");
  CHECK(reqs[0].form.at("StatusCallback") == "https://otp.example.com/twilio/status");
  CHECK(reqs[0].form.count("Body") == 0);
  // Without whatsapp_from the SMS number sends.
  auto plain = ChannelSender(Options(t), TwilioChannelOptions{"", kWhatsApp.whatsapp_content_sid});
  REQUIRE(plain->SendCode("+5511912345678", m, &receipt).ok());
  CHECK(t.fake.requests()[1].form.at("From") == "whatsapp:+12085551111");
}

TEST_CASE("twilio channels: SMS still goes through the SMS sender, byte for byte") {
  TlsFake t;
  auto sender = ChannelSender(Options(t), kWhatsApp);
  SmsReceipt receipt;
  REQUIRE(sender->Send("+12015551111", "Your otpd code is 123456.", &receipt).ok());
  CodeMessage m;
  m.code = "654321";
  m.text = "Your otpd code is 654321.";
  REQUIRE(sender->SendCode("+12015551111", m, &receipt).ok());
  const auto reqs = t.fake.requests();
  REQUIRE(reqs.size() == 2);
  for (const Recorded& r : reqs) {
    CHECK(r.path == std::string("/2010-04-01/Accounts/") + kSid + "/Messages.json");
    CHECK(r.form.size() == 3);
    CHECK(r.form.at("From") == "+12085551111");
  }
  CHECK(reqs[0].form.at("Body") == "Your otpd code is 123456.");
  CHECK(reqs[1].form.at("Body") == "Your otpd code is 654321.");
}

TEST_CASE("twilio channels: a refused call answers Twilio's code, without Twilio's text") {
  TlsFake t;
  t.fake.Respond([](int, httplib::Response& res) {
    res.status = 400;
    res.set_content(R"({"code":13224,"message":"The phone number +12015551111 is invalid",)"
                    R"("more_info":"https://www.twilio.com/docs/errors/13224","status":400})",
                    "application/json");
  });
  auto sender = ChannelSender(Options(t), TwilioChannelOptions{});
  CodeMessage m;
  m.channel = Channel::kVoice;
  m.code = "123456";
  m.text = "1, 2, 3, 4, 5, 6";
  SmsReceipt receipt;
  Status s = sender->SendCode("+12015551111", m, &receipt);
  CHECK(s.IsInvalidArgument());
  CHECK(receipt.provider_code == 13224);
  CHECK(receipt.number_refused);
  CHECK(s.message() == "twilio error 13224 (HTTP 400)");
  CHECK(t.fake.requests().size() == 1);  // a 4xx is not retried
}

TEST_CASE("twilio channels: a voice sender needs a number to call from") {
  TlsFake t;
  TwilioOptions o = Options(t);
  o.from = "";
  o.messaging_service_sid = "MG0123456789abcdef0123456789abcdef";
  auto sender = ChannelSender(o, TwilioChannelOptions{});
  CHECK_FALSE(sender->Supports(Channel::kVoice));
  CodeMessage m;
  m.channel = Channel::kVoice;
  SmsReceipt receipt;
  CHECK(sender->SendCode("+12015551111", m, &receipt).IsInvalidArgument());
  CHECK(t.fake.requests().empty());
}

TEST_CASE("twilio channels: /send-code by voice through the service reaches Calls.json") {
  TlsFake t;
  auto sender = ChannelSender(Options(t), kWhatsApp);
  OtpStack stack;
  OtpOptions options;
  options.channels.voice.enabled = true;
  options.channels.whatsapp.enabled = true;
  OtpService service(options, stack.storage.get(), stack.users.get(), sender.get(), &stack.clock,
                     &stack.random, &stack.hasher);
  HttpApi api(&service, HttpApiOptions());
  HttpAnswer a = api.Handle(
      HttpRequest{"POST", "/send-code", R"({"user_id":"abc","channel":"voice"})", "127.0.0.1"});
  CHECK(a.status == 200);
  CHECK(a.body.find(R"("channel":"voice")") != std::string::npos);
  auto reqs = t.fake.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].path.find("/Calls.json") != std::string::npos);
  const std::string twiml = reqs[0].form.at("Twiml");
  std::string code;
  for (char c : twiml.substr(twiml.find("code is "))) {
    if (c >= '0' && c <= '9') code += c;
    if (c == '<') break;
  }
  REQUIRE(code.size() == 6);
  HttpAnswer v =
      api.Handle(HttpRequest{"POST", "/verify-code", VerifyJson("abc", code), "127.0.0.1"});
  CHECK(v.status == 200);
  stack.clock.AdvanceSeconds(30);
  a = api.Handle(
      HttpRequest{"POST", "/send-code", R"({"user_id":"abc","channel":"whatsapp"})", "127.0.0.1"});
  CHECK(a.status == 200);
  reqs = t.fake.requests();
  REQUIRE(reqs.size() == 2);
  const auto vars = nlohmann::json::parse(reqs[1].form.at("ContentVariables"));
  v = api.Handle(HttpRequest{"POST", "/verify-code",
                             VerifyJson("abc", vars.at("1").get<std::string>()), "127.0.0.1"});
  CHECK(v.status == 200);
}

TEST_CASE("otpd binary: voice and WhatsApp through Twilio, no code in the log") {
  TempDir dir;
  TestCa ca(dir.path(), "bb");
  FakeTwilio fake(ca.Issue("server", "IP:127.0.0.1,DNS:localhost"));
  const std::string conf = dir.File("otpd.conf");
  WriteFile(conf, "listen = \"127.0.0.1\"\nport = 0\ndatabase = \"" + dir.File("otpd.db") +
                      "\"\nsend_cooldown = 0\nchannels = \"sms,voice,whatsapp\"\n"
                      "whatsapp_content_sid = \"HX0123456789abcdef0123456789abcdef\"\n"
                      "log_level = \"debug\"\n"
                      "\n[users]\nabc = \"+12015551111\"\n");
  const std::vector<std::string> env = {
      "TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef",
      "TWILIO_AUTH_TOKEN=bb-token-0123456789", "TWILIO_PHONE_NUMBER=+12085551111",
      "OTPD_TWILIO_API_BASE=" + fake.base(), "OTPD_TWILIO_CA_FILE=" + ca.cert_file()};

  CommandResult r = RunOtpd(dir, {"sms", "test", "+12135554567", "--channel", "voice"}, env);
  CHECK(r.exit_code == 0);
  REQUIRE(fake.requests().size() == 1);
  CHECK(fake.requests()[0].path.find("/Calls.json") != std::string::npos);
  CHECK(fake.requests()[0].form["Twiml"].find("1, 2, 3, 4, 5, 6") != std::string::npos);
  r = RunOtpd(dir, {"sms", "test", "+12135554567", "--channel", "fax"}, env);
  CHECK(r.exit_code == 2);

  std::vector<std::string> codes;
  {
    OtpdProcess otpd(dir, "a", {"serve", "--config", conf}, env);
    auto cli = otpd.Client();
    auto res = cli.Post("/send-code", R"({"user_id":"abc"})", "application/json");
    REQUIRE(res);
    CHECK(res->body ==
          R"({"message":"OTP sent successfully via SMS","user_id":"abc","phone":"+1*******111"})");
    codes.push_back(FindCode(fake.requests().back().form["Body"]));
    res = cli.Post("/send-code", R"({"user_id":"abc","channel":"voice"})", "application/json");
    REQUIRE(res);
    CHECK(res->body == R"({"message":"OTP sent successfully via voice call","user_id":"abc",)"
                       R"("phone":"+1*******111","channel":"voice"})");
    std::string spoken = fake.requests().back().form["Twiml"];
    std::string digits;
    for (char c : spoken.substr(spoken.find("code is "), 40)) {
      if (c >= '0' && c <= '9') digits += c;
    }
    codes.push_back(digits.substr(0, 6));
    res = cli.Post("/send-code", R"({"user_id":"abc","channel":"whatsapp"})", "application/json");
    REQUIRE(res);
    CHECK(res->status == 200);
    codes.push_back(nlohmann::json::parse(fake.requests().back().form["ContentVariables"])["1"]);
    res = cli.Post("/verify-code", VerifyJson("abc", codes.back()), "application/json");
    REQUIRE(res);
    CHECK(res->status == 200);
    res = cli.Post("/send-code", R"({"user_id":"abc","channel":"carrier-pigeon"})",
                   "application/json");
    REQUIRE(res);
    CHECK(res->status == 422);
    auto metrics = cli.Get("/metrics");
    REQUIRE(metrics);
    CHECK(metrics->body.find("otpd_channel_sends_total{channel=\"whatsapp\",outcome=\"sent\"} 1") !=
          std::string::npos);
    CHECK(otpd.Terminate() == 0);
    const std::string log = ReadFile(otpd.log());
    CHECK(log.find("twilio call accepted") != std::string::npos);
    CHECK(log.find("twilio whatsapp accepted") != std::string::npos);
    for (const std::string& code : codes) {
      CAPTURE(code);
      REQUIRE(code.size() == 6);
      CHECK(log.find(code) == std::string::npos);
      for (const std::string& run : DigitRuns(log)) CHECK(run != code);
      CHECK(log.find(SpokenDigits(code)) == std::string::npos);
    }
  }
  for (const Recorded& req : fake.requests()) {
    for (const std::string& code : codes) CHECK(req.path.find(code) == std::string::npos);
  }
}

}  // namespace otpd
