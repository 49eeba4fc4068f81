// Log: one line per event in logfmt on stderr:
//   ts=2026-11-24T01:02:03.456Z level=info msg="otpd started" port=8000
// When stderr is the journal ($JOURNAL_STREAM names stderr's device and
// inode, as systemd sets it for StandardError=journal) the ts= field is
// left to journald and each line starts with its syslog priority,
// "<3>level=error msg=...", so `journalctl -p err` selects by level.
// Values are quoted when they contain spaces, quotes, '=' or control
// characters; control characters are escaped, so a hostile value cannot
// forge a second line. Callers never pass codes, secrets or full phones.
// Thread-safe: each line is one write(2).
#ifndef OTPD_LOG_H_
#define OTPD_LOG_H_

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"

namespace otpd {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug" | "info" | "warn" | "error". False for anything else.
bool ParseLogLevel(std::string_view name, LogLevel* level);

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

using LogField = std::pair<std::string_view, std::string>;

// Points stderr at `path` (appending, created 0640), so log lines and
// anything else the process writes to stderr go there. Calling it again
// reopens the file: after logrotate moved it away, SIGHUP makes a new one.
// The switch is one dup2(2), atomic for concurrent writers. On failure
// stderr is left as it was and IOError names the file.
Status OpenLogFile(const std::string& path);

// Writes one line if `level` is enabled.
void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

// True when `journal_stream` (JOURNAL_STREAM's value, "DEV:INO", may be
// null) names the file `fd` is open on.
bool IsJournalStream(const char* journal_stream, int fd);

// The sd-daemon(3) priority prefix of `level`: "<7>" debug, "<6>" info,
// "<4>" warn, "<3>" error.
std::string JournalPrefix(LogLevel level);

// The line Log would write, without the ts= field or priority (for tests).
std::string FormatLogLine(LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields);

}  // namespace otpd

#endif  // OTPD_LOG_H_
