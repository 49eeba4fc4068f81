// Status: the result of an operation that can fail, as a value.
//
// A Status is either OK or carries a code and a human-readable message.
// Every layer returns Status instead of throwing; each backend has one
// function that maps its native errors to a Status, and the HTTP layer has
// one function that maps a Status to an HTTP answer. Copyable, thread-safe
// as any value type.
#ifndef OTPD_STATUS_H_
#define OTPD_STATUS_H_

#include <string>
#include <utility>

namespace otpd {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,         // the thing asked for does not exist
    kInvalidArgument,  // the caller's input is wrong; nothing was changed
    kAlreadyExists,
    kIOError,      // the file system or database failed
    kBusy,         // a lock could not be taken in time; retry later
    kUnavailable,  // a dependency (store, SMS provider) is not reachable
    kInternal,     // a bug or an unexpected library answer
  };

  Status() = default;  // OK

  static Status OK() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status AlreadyExists(std::string msg) {
    return Status(Code::kAlreadyExists, std::move(msg));
  }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status Busy(std::string msg) { return Status(Code::kBusy, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "OK", or "<code name>: <message>".
  std::string ToString() const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace otpd

#endif  // OTPD_STATUS_H_
