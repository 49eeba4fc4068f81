// The Config -> options translators: each part's options struct filled from
// the effective config. The config is validated by ParseInvocation first,
// so none of these can fail.
#ifndef OTPD_APP_OPTIONS_H_
#define OTPD_APP_OPTIONS_H_

#include <string>

#include "config/config.h"
#include "core/code_hash.h"
#include "http/api_keys.h"
#include "http/http_api.h"
#include "http/http_server.h"
#include "otp/otp_service.h"
#include "otp/sms.h"
#include "otp/storage.h"
#include "store/sqlite_db.h"

namespace otpd {

// secret_file, or "otpd.secret" beside the database.
std::string SecretPath(const Config& c);

OtpOptions ServiceOptions(const Config& c);
// The channel part of ServiceOptions: channels, voice_*, whatsapp_*.
void ChannelServiceOptions(const Config& c, ChannelOptions* o);
HttpServerOptions ServerOptions(const Config& c);
// `keys` are loaded once at start (a reload keeps them: they need a restart).
HttpApiOptions ApiOptions(const Config& c, const ApiKeys& keys);
// The token is as configured; twilio_auth_token_file is read by NewSmsSender.
TwilioOptions TwilioSettings(const Config& c);
// The database of `serve` (checkpointing in the background) or of a
// short-lived admin command (SQLite's automatic checkpoints).
SqliteOptions DatabaseOptions(const Config& c, bool serving);
#ifdef OTPD_REDIS
RedisOptions RedisStoreOptions(const Config& c, const RedisEndpoint& endpoint,
                               const CodeHasher& hasher);
#endif

// The sender sms_backend asks for ("auto" resolved by the config).
Status NewSmsSender(const Config& c, std::unique_ptr<SmsSender>* sms);

}  // namespace otpd

#endif  // OTPD_APP_OPTIONS_H_
