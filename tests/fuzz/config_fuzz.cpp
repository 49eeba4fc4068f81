// libFuzzer target over the config file reader: toml++ and otpd's strict
// layer (config/sources.h), then the merge and the checks of values, and
// check-config's printing of a config that passed. Any input must give OK
// or one InvalidArgument line, never a crash, a leak or UB.
//
//   make fuzz FUZZ_TARGETS=config   run for FUZZ_TIME seconds
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"
#include "config/sources.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace otpd;
  const std::string text(reinterpret_cast<const char*>(data), size);
  Settings settings;
  Config config;
  Status s = ReadConfigText("fuzz.conf", text, &settings, &config);
  if (s.ok()) s = ApplySettings(settings, &config);
  if (s.ok()) s = ValidateConfig(config);
  if (s.ok()) DescribeConfig(config);
  if (!s.ok() && !s.IsInvalidArgument()) __builtin_trap();  // every refusal is a bad input
  return 0;
}
