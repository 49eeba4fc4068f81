// libFuzzer target over the users CSV reader of `otpd users import`
// (app/users_csv.h), and the writer of `users export` on what it accepted.
// Any input must be accepted or refused with errors, never a crash, a
// leak or UB.
//
//   make fuzz FUZZ_TARGETS=users_csv   run for FUZZ_TIME seconds
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "app/users_csv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace otpd;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<User> users;
  std::vector<std::string> errors;
  if (ParseUsersCsv(text, &users, &errors).ok()) FormatUsersCsv(users);
  return 0;
}
