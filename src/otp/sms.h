// SmsSender: how a code reaches the user's phone.
//
// Implementations: sms_console.cpp (development: prints the message and
// optionally appends it to a file), sms_twilio.cpp and sms_vonage.cpp
// (the providers' REST APIs over HTTPS), and sms_failover.cpp (an ordered
// list of providers with a circuit breaker each). Thread-safe: the service
// calls Send from many request threads at once.
#ifndef OTPD_SMS_H_
#define OTPD_SMS_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/provider_metrics.h"
#include "core/status.h"
#include "otp/channel.h"

namespace otpd {

struct SmsReceipt {
  std::string provider_id;  // the provider's message ID, when it gave one
  int provider_code = 0;    // the provider's numeric error code on failure
  std::string provider;     // which provider answered: "twilio", "vonage", "console"
  // The provider refused the number itself (invalid, unroutable, opted
  // out): another provider would refuse it too.
  bool number_refused = false;
};

// One code to deliver on a channel. Voice and WhatsApp do not send the SMS
// text: voice reads the code aloud in the user's language, WhatsApp fills
// an approved template, so the sender needs the code itself.
struct CodeMessage {
  Channel channel = Channel::kSms;
  std::string code;    // the digits (secret: never in a log line or URL)
  std::string locale;  // the user's locale ("es-MX"), "" when unknown; voice:
                       // the <Say> language (FillVoiceScript)
  std::string text;    // the SMS text of this code (what Send would send);
                       // voice: the script, the code spelled out
  int minutes = 0;     // the code's lifetime, rounded up
  std::string app;     // app_name
};

class SmsSender {
 public:
  virtual ~SmsSender() = default;
  // Sends `body` to `to` (E.164). OK only when the provider took the
  // message; on failure `receipt` may carry the provider's error code.
  virtual Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) = 0;

  // Whether SendCode can deliver on `channel`. Every sender does SMS.
  virtual bool Supports(Channel channel) const { return channel == Channel::kSms; }

  // Delivers message.code to `to` on message.channel. The default sends
  // message.text with Send for SMS and answers InvalidArgument for a
  // channel the sender does not support (nothing sent). Same receipt
  // rules as Send.
  virtual Status SendCode(const std::string& to, const CodeMessage& message, SmsReceipt* receipt) {
    if (message.channel == Channel::kSms) return Send(to, message.text, receipt);
    return Status::InvalidArgument(std::string("this sender cannot deliver by ") +
                                   ChannelName(message.channel));
  }

  // Send, given up by `deadline` (steady clock) when that comes before the
  // sender's own timeout: the failover sender passes each provider its
  // share of what is left of the send's deadline. The default ignores it.
  using Deadline = std::chrono::steady_clock::time_point;
  virtual Status SendBy(const std::string& to, const std::string& body, Deadline deadline,
                        SmsReceipt* receipt) {
    (void)deadline;
    return Send(to, body, receipt);
  }
};

// Prints "to <masked phone>: <body>" on stderr and, when `log_file` is not
// empty, appends "<phone> <body>" lines to it (opened 0600, flushed per
// line) so scripts and tests can read codes.
Status NewConsoleSmsSender(const std::string& log_file, std::unique_ptr<SmsSender>* sender);

// How the Twilio sender reaches Twilio. Credentials: `account_sid` always
// (it is in the URL); Basic auth is `api_key_sid`:`api_key_secret` when
// both are set, else `account_sid`:`auth_token`. Exactly one sender
// identity: `from` (a number or alphanumeric sender ID) or
// `messaging_service_sid` (which wins when both are set).
struct TwilioOptions {
  std::string account_sid;
  std::string auth_token;  // secret
  std::string api_key_sid;
  std::string api_key_secret;  // secret
  std::string from;
  std::string messaging_service_sid;
  std::string status_callback;                      // optional URL Twilio posts delivery status to
  std::string api_base = "https://api.twilio.com";  // https:// only; no path
  std::string ca_file;                              // PEM bundle; empty: the system store
  int connect_timeout_ms = 1500;                    // per TCP+TLS connect
  int timeout_ms = 6000;                            // whole Send, retries and backoff included
  int max_idle_connections = 4;                     // keep-alive connections kept for reuse
  int max_idle_ms = 20000;                          // an idle connection older than this is closed
  Clock* clock = nullptr;  // backoff sleeps, idle ages; null: SystemClock()
};

// Twilio's Programmable Messaging API. Send posts one form-encoded message
// and answers OK on 201, with the message `sid` in receipt->provider_id.
// Certificates and the host name are always verified. Keep-alive
// connections are pooled: each one is used by one thread at a time, and at
// most `max_idle_connections` are kept between sends. Retries (at most two,
// short backoff, within `timeout_ms`) happen only when Twilio cannot have
// taken the message: no connection, 429 / error 20429, or 5xx. Any other
// failure answers at once with Twilio's error code in
// receipt->provider_code, and receipt->number_refused set when the code
// refuses the number itself (21211, 21214, 21217, 21408, 21610, 21614:
// sms_twilio.cpp says why each); the log line names it and Twilio's message,
// never the token or the message body.
// InvalidArgument from the factory when an option is unusable (missing
// credential, non-https base, CR/LF in a header value).
Status NewTwilioSmsSender(const TwilioOptions& options, std::unique_ptr<SmsSender>* sender);

// Voice and WhatsApp through the same Twilio account as the SMS sender.
struct TwilioChannelOptions {
  std::string whatsapp_from;         // the WhatsApp sender number; "": TwilioOptions::from
  std::string whatsapp_content_sid;  // HX...: the approved template; "": no WhatsApp
};

// Wraps `sms` (Twilio's SMS sender: Send and SMS SendCode go to it) and
// adds, over its own pool to the same account and with the same TLS,
// deadline and retry rules: voice calls (POST .../Calls.json with To,
// From = TwilioOptions::from, and inline Twiml that says message.text in
// the <Say> language message.locale, twice) when `from` is a +E.164
// number; WhatsApp messages (POST .../Messages.json with whatsapp: To and
// From, ContentSid, ContentVariables {"1":"<code>"}, StatusCallback) when
// whatsapp_content_sid is set. Supports says which. Log lines carry the
// masked number, the channel and Twilio's error code, never the form (it
// holds the code). InvalidArgument when an option is unusable.
Status NewTwilioChannelSender(const TwilioOptions& twilio, const TwilioChannelOptions& channels,
                              std::unique_ptr<SmsSender> sms, std::unique_ptr<SmsSender>* sender);

// How the Vonage sender reaches Vonage's SMS API
// (POST {api_base}/sms/json, form fields api_key, api_secret, from, to,
// text). Same TLS, pooling, deadline and retry rules as the Twilio sender.
struct VonageOptions {
  std::string api_key;
  std::string api_secret;                           // secret
  std::string from;                                 // a number or alphanumeric sender ID
  std::string api_base = "https://rest.nexmo.com";  // https:// only; no path
  std::string ca_file;                              // PEM bundle; empty: the system store
  int connect_timeout_ms = 1500;
  int timeout_ms = 6000;
  int max_idle_connections = 4;
  int max_idle_ms = 20000;
  Clock* clock = nullptr;  // backoff sleeps, idle ages; null: SystemClock()
};

// Vonage's SMS API. OK when messages[0].status is "0", with its
// message-id in receipt->provider_id. Retried (at most twice, within
// timeout_ms) only when Vonage cannot have taken the message: no
// connection, HTTP 429 or 5xx, status 1 (throttled) or 5 (internal error).
// Other failures answer at once with Vonage's status in
// receipt->provider_code; a refusal of the number itself (3 invalid
// parameters, 6 unroutable number, 7 barred number) sets
// receipt->number_refused. The secret is never logged.
Status NewVonageSmsSender(const VonageOptions& options, std::unique_ptr<SmsSender>* sender);

// One provider of a failover list: its name ("twilio", "vonage") and sender.
struct SmsProvider {
  std::string name;
  std::unique_ptr<SmsSender> sender;
};

struct FailoverOptions {
  int timeout_ms = 8000;               // a whole send: every provider and retry
  int breaker_failures = 3;            // consecutive provider faults that open a circuit
  int64_t breaker_cooloff_ms = 30000;  // how long an open circuit is skipped
};

// A provider's circuit for /readyz and /metrics: "closed" (in use),
// "open" (skipped until its cool-off ends) or "half_open" (one trial send
// allowed, or under way).
struct SmsProviderState {
  std::string name;
  std::string state;
};

// What /readyz and /metrics ask the SMS side. Thread-safe.
class SmsHealth {
 public:
  virtual ~SmsHealth() = default;
  virtual std::vector<SmsProviderState> ProviderStates() = 0;
  // The provider families of /metrics (core/provider_metrics.h).
  virtual std::string RenderMetrics() = 0;
};

// sms_backend = "twilio,vonage": tries the providers in order within one
// deadline (`timeout_ms`). A provider gets at most its share of what is
// left (what is left divided by the providers still to try, the last one
// all of it), and never more than its own timeout.
//
// Failover: a send that fails for the provider's reason (no connection,
// a timeout, 5xx, 429, bad credentials, a suspended account: any failure
// whose receipt does not say number_refused) goes to the next provider.
// A refusal of the number itself (receipt->number_refused: invalid,
// unroutable, opted out) is answered at once: another provider would
// refuse it too, or must not be asked.
//
// Circuit breaker, per provider, on `clock`'s monotonic time: after
// `breaker_failures` provider faults in a row the circuit opens and the
// provider is skipped for `breaker_cooloff_ms`; then it is half open and
// exactly one send tries it (others skip it meanwhile): success closes the
// circuit, a fault opens it for another cool-off. A number refusal counts
// as the provider working. When every circuit is open the send fails at
// once with Unavailable.
//
// receipt->provider names the provider that answered last. Logs each
// fault ("sms provider failed", with the next step) and a send that
// succeeded after a failover ("sms sent after failover", with the
// providers that failed); counts every attempt and failover in its own
// ProviderMetrics (core/provider_metrics.h), which /metrics renders
// through SmsHealth. REQUIRES: `clock` outlives the sender.
class FailoverSmsSender : public SmsSender, public SmsHealth {
 public:
  // InvalidArgument when `providers` is empty, holds a null sender or a
  // name twice, or an option is not positive.
  static Status New(std::vector<SmsProvider> providers, const FailoverOptions& options,
                    Clock* clock, std::unique_ptr<FailoverSmsSender>* sender);
  ~FailoverSmsSender() override;

  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override;
  Status SendBy(const std::string& to, const std::string& body, Deadline deadline,
                SmsReceipt* receipt) override;
  // Any provider's channel. SMS fails over as Send does; voice and
  // WhatsApp go to the first provider that supports them, without
  // failover (only Twilio delivers them).
  bool Supports(Channel channel) const override;
  Status SendCode(const std::string& to, const CodeMessage& message, SmsReceipt* receipt) override;
  std::vector<SmsProviderState> ProviderStates() override;
  std::string RenderMetrics() override;
  const ProviderMetrics& metrics() const;

 private:
  struct Impl;
  explicit FailoverSmsSender(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads the auth token from `path` (systemd LoadCredential): the whole file
// without a trailing newline. IOError when unreadable; InvalidArgument when
// empty or holding control characters. Logs a warning when the file is
// readable by group or others.
Status ReadTwilioAuthTokenFile(const std::string& path, std::string* token);
// The same for any provider's secret file; messages name `key`.
Status ReadProviderSecretFile(const std::string& key, const std::string& path, std::string* secret);

// Fills {code}, {minutes} and {app} in `tmpl`; other text is kept as is.
std::string RenderSmsTemplate(const std::string& tmpl, const std::string& code, int minutes,
                              const std::string& app);

// The template for a user's `locale`: the exact tag (case-insensitive, '_'
// same as '-'), then its language ("es-MX" -> "es"), then `default_template`.
const std::string& SelectSmsTemplate(const std::map<std::string, std::string>& templates,
                                     const std::string& default_template,
                                     const std::string& locale);

// The language Twilio's <Say> reads a user with `locale` in: the exact
// tag when Twilio has a voice for it ("es-MX"), else the main one of its
// language ("es" -> "es-ES"); "" when Twilio speaks no such language.
// Case-insensitive, '_' same as '-'. (sms/twilio_channels.cpp)
std::string SayLanguage(const std::string& locale);

// `body` + "\n\n@<domain> #<code>", the origin-bound line that WebOTP and
// Android's SMS Retriever read; `body` unchanged when `domain` is empty.
std::string AppendWebOtpLine(const std::string& body, const std::string& domain,
                             const std::string& code);

// How a UTF-8 text is encoded in an SMS: GSM-7 when every character is in
// the GSM 03.38 basic set or its extension (which count 2), else UCS-2
// (characters outside the BMP count 2). One segment holds `limit` units.
struct SmsLength {
  bool gsm7 = true;
  int units = 0;
  int limit = 160;  // 160 GSM-7, 70 UCS-2
  bool fits() const { return units <= limit; }
};
SmsLength MeasureSms(const std::string& text);

}  // namespace otpd

#endif  // OTPD_SMS_H_
