// The failover sender with more than one channel (otp/sms.h): SMS fails
// over; voice and WhatsApp go only to a provider that supports them.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "otp/sms.h"
#include "test_util.h"

namespace otpd {
namespace {

// A provider that records what it was asked to send and answers `answer`.
class RecordingProvider : public SmsSender {
 public:
  RecordingProvider(std::string name, bool voice, Status answer)
      : name_(std::move(name)), voice_(voice), answer_(std::move(answer)) {}

  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override {
    (void)to;
    sent.push_back("sms:" + body);
    receipt->provider = name_;
    return answer_;
  }
  bool Supports(Channel channel) const override {
    return channel == Channel::kSms || (voice_ && channel == Channel::kVoice);
  }
  Status SendCode(const std::string& to, const CodeMessage& message, SmsReceipt* receipt) override {
    if (message.channel == Channel::kSms) return SmsSender::SendCode(to, message, receipt);
    sent.push_back(std::string(ChannelName(message.channel)) + ":" + message.code);
    receipt->provider = name_;
    return answer_;
  }

  std::vector<std::string> sent;

 private:
  const std::string name_;
  const bool voice_;
  const Status answer_;
};

struct Chain {
  RecordingProvider* first = nullptr;
  RecordingProvider* second = nullptr;
  std::unique_ptr<FailoverSmsSender> sender;
};

// first: SMS only; second: SMS and voice.
Chain NewChain(Status first_answer, Status second_answer, FakeClock* clock) {
  Chain c;
  std::vector<SmsProvider> list(2);
  auto first = std::make_unique<RecordingProvider>("vonage", false, first_answer);
  auto second = std::make_unique<RecordingProvider>("twilio", true, second_answer);
  c.first = first.get();
  c.second = second.get();
  list[0] = SmsProvider{"vonage", std::move(first)};
  list[1] = SmsProvider{"twilio", std::move(second)};
  REQUIRE(FailoverSmsSender::New(std::move(list), FailoverOptions(), clock, &c.sender).ok());
  return c;
}

CodeMessage Message(Channel channel) {
  CodeMessage m;
  m.channel = channel;
  m.code = "472913";
  m.text = "Your code is 472913";
  return m;
}

TEST_CASE("failover channels: a channel is supported when any provider supports it") {
  FakeClock clock;
  Chain c = NewChain(Status::OK(), Status::OK(), &clock);
  CHECK(c.sender->Supports(Channel::kSms));
  CHECK(c.sender->Supports(Channel::kVoice));
  CHECK_FALSE(c.sender->Supports(Channel::kWhatsApp));
}

TEST_CASE("failover channels: voice goes to the provider that supports it, SMS to the first") {
  FakeClock clock;
  Chain c = NewChain(Status::OK(), Status::OK(), &clock);
  SmsReceipt r;
  REQUIRE(c.sender->SendCode("+12135554567", Message(Channel::kVoice), &r).ok());
  CHECK(r.provider == "twilio");
  CHECK(c.first->sent.empty());
  CHECK(c.second->sent == std::vector<std::string>{"voice:472913"});
  r = SmsReceipt();
  REQUIRE(c.sender->SendCode("+12135554567", Message(Channel::kSms), &r).ok());
  CHECK(r.provider == "vonage");
  CHECK(c.first->sent == std::vector<std::string>{"sms:Your code is 472913"});
  CHECK(c.second->sent.size() == 1);
}

TEST_CASE("failover channels: SMS fails over, voice does not") {
  FakeClock clock;
  Chain c = NewChain(Status::Unavailable("provider down"), Status::Unavailable("down too"), &clock);
  SmsReceipt r;
  CHECK_FALSE(c.sender->SendCode("+12135554567", Message(Channel::kSms), &r).ok());
  CHECK(c.first->sent.size() == 1);
  CHECK(c.second->sent.size() == 1);  // the SMS went on to the second provider
  r = SmsReceipt();
  CHECK_FALSE(c.sender->SendCode("+12135554567", Message(Channel::kVoice), &r).ok());
  CHECK(c.first->sent.size() == 1);   // never asked for a call
  CHECK(c.second->sent.size() == 2);  // asked once, no retry elsewhere
  r = SmsReceipt();
  CHECK(c.sender->SendCode("+12135554567", Message(Channel::kWhatsApp), &r).IsInvalidArgument());
}

}  // namespace
}  // namespace otpd
