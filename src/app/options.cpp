#include "app/options.h"

#include <cstdlib>
#include <fstream>

#include "app/receipts.h"
#include "config/channel_keys.h"
#include "core/log.h"
#include "core/phone.h"
#include "http/client_ip.h"

namespace otpd {

std::string SecretPath(const Config& c) {
  if (!c.secret_file.empty()) return c.secret_file;
  const size_t slash = c.database.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : c.database.substr(0, slash);
  return (dir.empty() ? "/" : dir + "/") + "otpd.secret";
}

OtpOptions ServiceOptions(const Config& c) {
  OtpOptions o;
  o.code_length = c.code_length;
  o.expiry_ms = int64_t{c.expiry} * 1000;
  o.max_attempts = c.max_attempts;
  o.expired_grace_ms = int64_t{c.expired_grace} * 1000;
  o.app_name = c.app_name;
  o.message_template = c.message_template;
  o.templates = c.templates;
  o.webotp_domain = c.webotp_domain;
  o.send_limits.cooldown_ms = int64_t{c.send_cooldown} * 1000;
  o.send_limits.per_user = c.send_user_cap;
  o.send_limits.per_phone = c.send_phone_cap;
  o.send_limits.per_ip = c.send_ip_cap;
  o.send_limits.global = c.sms_budget_per_hour;
  // Validated by ParseInvocation, so this cannot fail here.
  if (!c.allowed_country_codes.empty()) {
    ParseCountryCodes(c.allowed_country_codes, &o.allowed_country_codes);
  }
  if (!c.allowed_regions.empty()) ParseRegions(c.allowed_regions, &o.allowed_regions);
  if (!c.refuse_phone_types.empty()) {
    ParsePhoneTypes(c.refuse_phone_types, &o.refused_phone_types);
  }
  o.max_failures = c.verify_failure_cap;
  o.failure_window_ms = int64_t{c.verify_failure_window} * 1000;
  o.conceal_unknown_users = c.conceal_unknown_users;
  ChannelServiceOptions(c, &o.channels);
  o.conceal_initial_wait_us = int64_t{c.conceal_initial_wait} * 1000;
  return o;
}

PumpingOptions PumpingOptionsOf(const Config& c) {
  PumpingOptions o;
  o.enabled = c.pumping_detection;
  o.window_ms = int64_t{c.pumping_window} * 1000;
  o.baseline_ms = int64_t{c.pumping_baseline} * 1000;
  o.multiple = c.pumping_multiple;
  o.min_sends = c.pumping_min_sends;
  o.conversion_below = c.pumping_conversion_below;
  o.pause_ms = int64_t{c.pumping_pause} * 1000;
  o.prefix_digits = c.pumping_prefix_digits;
  return o;
}

// The channel keys into ChannelOptions (validated by ParseInvocation). A
// channel's region list left unset is allowed_regions.
void ChannelServiceOptions(const Config& c, ChannelOptions* o) {
  for (const std::string& name : ChannelList(c.channels)) {
    if (name == "voice") o->voice.enabled = true;
    if (name == "whatsapp") o->whatsapp.enabled = true;
  }
  o->voice.budget = c.voice_budget_per_hour;
  o->whatsapp.budget = c.whatsapp_budget_per_hour;
  const std::string& voice =
      c.voice_allowed_regions.empty() ? c.allowed_regions : c.voice_allowed_regions;
  const std::string& whatsapp =
      c.whatsapp_allowed_regions.empty() ? c.allowed_regions : c.whatsapp_allowed_regions;
  if (!voice.empty()) ParseRegions(voice, &o->voice.allowed_regions);
  if (!whatsapp.empty()) ParseRegions(whatsapp, &o->whatsapp.allowed_regions);
  o->voice_template = c.voice_template;
  o->voice_language = c.voice_language;
  o->voice_templates = c.voice_templates;
}

HttpServerOptions ServerOptions(const Config& c) {
  HttpServerOptions o;
  o.host = c.listen;
  o.port = c.port;
  o.threads = c.threads;
  o.max_body_bytes = static_cast<size_t>(c.max_body_bytes);
  o.read_timeout_s = c.read_timeout;
  o.write_timeout_s = c.write_timeout;
  o.keepalive_timeout_s = c.keepalive_timeout;
  o.keepalive_max = c.keepalive_max;
  o.max_connections_per_ip = c.max_connections_per_ip;
  o.header_timeout_ms = c.header_timeout * 1000;
  o.reuse_port = c.reuse_port;
  o.tls_cert = c.tls_cert;
  o.tls_key = c.tls_key;
  // Validated by ParseInvocation, so this cannot fail here.
  TrustedProxies::Parse(c.trusted_proxies, &o.trusted_proxies);
  return o;
}

HttpApiOptions ApiOptions(const Config& c, const ApiKeys& keys) {
  HttpApiOptions o;
  o.expose_full_phone = c.expose_phone == "full";
  o.base_path = c.base_path;
  o.api_keys = keys;
  o.twilio_status_url = ReceiptUrl(c);
  if (!o.twilio_status_url.empty()) o.twilio_auth_token = ReceiptSigningToken(c);
  return o;
}

TwilioOptions TwilioSettings(const Config& c) {
  TwilioOptions o;
  o.account_sid = c.twilio_account_sid;
  o.auth_token = c.twilio_auth_token;
  o.api_key_sid = c.twilio_api_key_sid;
  o.api_key_secret = c.twilio_api_key_secret;
  o.from = c.twilio_phone_number;
  o.messaging_service_sid = c.twilio_messaging_service_sid;
  o.status_callback = c.public_url.empty() ? c.twilio_status_callback : ReceiptUrl(c);
  o.api_base = c.twilio_api_base;
  o.ca_file = c.twilio_ca_file;
  o.connect_timeout_ms = c.twilio_connect_timeout_ms;
  o.timeout_ms = c.twilio_timeout_ms;
  return o;
}

SqliteOptions DatabaseOptions(const Config& c, bool serving) {
  SqliteOptions o;
  o.path = c.database;
  o.busy_timeout_ms = c.busy_timeout_ms;
  o.synchronous = c.synchronous;
  // The server checkpoints in the background; the CLI commands, short-lived,
  // keep SQLite's automatic checkpoints.
  if (serving) {
    o.checkpoint_interval_ms = 100;
    // The WAL stays under this size however long writes go on (README,
    // Performance); /readyz fails with under this much free space left.
    o.wal_limit_bytes = 16 << 20;
    o.min_free_bytes = 16 << 20;
  }
  return o;
}

#ifdef OTPD_REDIS
RedisOptions RedisStoreOptions(const Config& c, const RedisEndpoint& endpoint,
                               const CodeHasher& hasher) {
  RedisOptions o;
  o.secret_fingerprint = hasher.Fingerprint();
  o.key_hasher = &hasher;
  o.endpoint = endpoint;
  o.prefix = c.redis_prefix;
  o.timeout_ms = c.redis_timeout_ms;
  o.connections = c.redis_connections;
  o.expired_grace_ms = int64_t{c.expired_grace} * 1000;
  if (c.verify_failure_cap > 0) o.lost_data_hold_ms = int64_t{c.verify_failure_window} * 1000;
  return o;
}
#endif

VonageOptions VonageSettings(const Config& c) {
  VonageOptions o;
  o.api_key = c.vonage_api_key;
  o.api_secret = c.vonage_api_secret;
  o.from = c.vonage_from;
  o.api_base = c.vonage_api_base;
  o.ca_file = c.vonage_ca_file;
  o.connect_timeout_ms = c.vonage_connect_timeout_ms;
  o.timeout_ms = c.vonage_timeout_ms;
  return o;
}

FailoverOptions FailoverSettings(const Config& c) {
  FailoverOptions o;
  o.timeout_ms = c.sms_timeout_ms;
  o.breaker_failures = c.sms_breaker_failures;
  o.breaker_cooloff_ms = int64_t{c.sms_breaker_cooloff} * 1000;
  return o;
}

Status NewProviderSmsSender(const Config& c, const std::string& name,
                            std::unique_ptr<SmsSender>* sms) {
  if (name == "twilio") {
    TwilioOptions o = TwilioSettings(c);
    if (!c.twilio_auth_token_file.empty()) {
      Status s = ReadTwilioAuthTokenFile(c.twilio_auth_token_file, &o.auth_token);
      if (!s.ok()) return s;
    }
    std::unique_ptr<SmsSender> twilio;
    Status s = NewTwilioSmsSender(o, &twilio);
    if (!s.ok()) return s;
    return NewTwilioChannelSender(o, TwilioChannelOptions{c.whatsapp_from, c.whatsapp_content_sid},
                                  std::move(twilio), sms);
  }
  if (name == "vonage") {
    VonageOptions o = VonageSettings(c);
    if (!c.vonage_api_secret_file.empty()) {
      Status s =
          ReadProviderSecretFile("vonage_api_secret_file", c.vonage_api_secret_file, &o.api_secret);
      if (!s.ok()) return s;
    }
    return NewVonageSmsSender(o, sms);
  }
  if (name == "console") return NewConsoleSmsSender(c.sms_log_file, sms);
  return Status::InvalidArgument("unknown SMS provider '" + name + "': use twilio or vonage");
}

Status NewSmsSender(const Config& c, std::unique_ptr<SmsSender>* sms) {
  const std::vector<std::string> backends = SmsBackends(c);
  if (backends.size() == 1 && backends[0] == "console" && !c.twilio_account_sid.empty()) {
    Log(LogLevel::kWarn, "twilio settings are ignored: sms_backend is console");
  }
  if (backends.size() == 1) return NewProviderSmsSender(c, backends[0], sms);
  std::vector<SmsProvider> providers;
  for (const std::string& name : backends) {
    std::unique_ptr<SmsSender> one;
    Status s = NewProviderSmsSender(c, name, &one);
    if (!s.ok()) return s;
    providers.push_back(SmsProvider{name, std::move(one)});
  }
  std::unique_ptr<FailoverSmsSender> failover;
  Status s =
      FailoverSmsSender::New(std::move(providers), FailoverSettings(c), SystemClock(), &failover);
  if (s.ok()) *sms = std::move(failover);
  return s;
}

}  // namespace otpd
