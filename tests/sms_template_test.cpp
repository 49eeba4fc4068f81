// Message text: template choice by locale, the WebOTP line, segment sizes.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "otp/sms.h"

namespace otpd {
namespace {

const std::map<std::string, std::string> kTemplates = {
    {"es", "ES {code}"}, {"es-MX", "MX {code}"}, {"pt_BR", "BR {code}"}};
const std::string kDefault = "EN {code}";

TEST_CASE("templates: exact locale, then language, then the default") {
  CHECK(SelectSmsTemplate(kTemplates, kDefault, "es-MX") == "MX {code}");
  CHECK(SelectSmsTemplate(kTemplates, kDefault, "es-mx") == "MX {code}");
  CHECK(SelectSmsTemplate(kTemplates, kDefault, "es_MX") == "MX {code}");
  CHECK(SelectSmsTemplate(kTemplates, kDefault, "es-AR") == "ES {code}");
  CHECK(SelectSmsTemplate(kTemplates, kDefault, "es") == "ES {code}");
  CHECK(SelectSmsTemplate(kTemplates, kDefault, "pt-BR") == "BR {code}");
  CHECK(SelectSmsTemplate(kTemplates, kDefault, "pt") == kDefault);
  CHECK(SelectSmsTemplate(kTemplates, kDefault, "fr-FR") == kDefault);
  CHECK(SelectSmsTemplate(kTemplates, kDefault, "") == kDefault);
  CHECK(SelectSmsTemplate({}, kDefault, "es") == kDefault);
}

TEST_CASE("templates: the WebOTP line ends the message") {
  CHECK(AppendWebOtpLine("Your code is 123456", "example.com", "123456") ==
        "Your code is 123456\n\n@example.com #123456");
  CHECK(AppendWebOtpLine("Your code is 123456", "", "123456") == "Your code is 123456");
}

TEST_CASE("templates: GSM-7 and UCS-2 segment sizes") {
  SmsLength l = MeasureSms(std::string(160, 'a'));
  CHECK(l.gsm7);
  CHECK(l.units == 160);
  CHECK(l.limit == 160);
  CHECK(l.fits());
  CHECK_FALSE(MeasureSms(std::string(161, 'a')).fits());
  // Accented letters of the basic set stay GSM-7, one unit each.
  l = MeasureSms("\xC3\xA9\xC3\xA8\xC3\xBC\xC3\xB1 \xC2\xA3");  // "éèüñ £"
  CHECK(l.gsm7);
  CHECK(l.units == 6);
  // Extension characters count two.
  l = MeasureSms("{}\xE2\x82\xAC");  // "{}€"
  CHECK(l.gsm7);
  CHECK(l.units == 6);
  // One character outside GSM 03.38 makes the whole message UCS-2.
  l = MeasureSms(
      "Tu c\xC3\xB3"
      "digo");  // "ó" is not in the basic set
  CHECK_FALSE(l.gsm7);
  CHECK(l.limit == 70);
  CHECK(l.units == 9);
  l = MeasureSms("ok \xF0\x9F\x98\x80");  // an emoji: two UTF-16 units
  CHECK_FALSE(l.gsm7);
  CHECK(l.units == 5);
  CHECK_FALSE(MeasureSms("`").gsm7);
  std::string seventy_one = "\xC3\xB3";
  for (int i = 0; i < 70; ++i) seventy_one += "a";
  CHECK_FALSE(MeasureSms(seventy_one).fits());
}

}  // namespace
}  // namespace otpd
