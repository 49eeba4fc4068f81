// Message text: template choice by locale, the WebOTP line, and how many
// characters one SMS segment holds (sms.h).
#include <cctype>
#include <string_view>

#include "otp/sms.h"

namespace otpd {
namespace {

bool SameTag(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    const char cx = x == '_' ? '-' : static_cast<char>(tolower(x));
    const char cy = y == '_' ? '-' : static_cast<char>(tolower(y));
    if (cx != cy) return false;
  }
  return true;
}

const std::string* FindTag(const std::map<std::string, std::string>& templates,
                           std::string_view tag) {
  for (const auto& [locale, text] : templates) {
    if (SameTag(locale, tag)) return &text;
  }
  return nullptr;
}

// Decodes one UTF-8 sequence at s[*i]; invalid bytes count as U+FFFD.
uint32_t NextCodePoint(const std::string& s, size_t* i) {
  const auto b = static_cast<unsigned char>(s[*i]);
  const int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (len == 0 || *i + len > s.size()) {
    ++*i;
    return 0xFFFD;
  }
  uint32_t cp = len == 1 ? b : b & (0x7F >> len);
  for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[*i + k]) & 0x3F);
  *i += len;
  return cp;
}

// GSM 03.38: 1 for the basic set, 2 for the extension table, 0 outside.
int GsmUnits(uint32_t cp) {
  static const std::u32string_view kBasic =
      U"@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
      U"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  static const std::u32string_view kExtension = U"\f^{}\\[~]|€";
  if (kBasic.find(static_cast<char32_t>(cp)) != std::u32string_view::npos) return 1;
  if (kExtension.find(static_cast<char32_t>(cp)) != std::u32string_view::npos) return 2;
  return 0;
}

}  // namespace

const std::string& SelectSmsTemplate(const std::map<std::string, std::string>& templates,
                                     const std::string& default_template,
                                     const std::string& locale) {
  if (locale.empty()) return default_template;
  if (const std::string* exact = FindTag(templates, locale)) return *exact;
  const size_t dash = locale.find_first_of("-_");
  if (dash != std::string::npos) {
    if (const std::string* lang = FindTag(templates, std::string_view(locale).substr(0, dash))) {
      return *lang;
    }
  }
  return default_template;
}

std::string AppendWebOtpLine(const std::string& body, const std::string& domain,
                             const std::string& code) {
  if (domain.empty()) return body;
  return body + "\n\n@" + domain + " #" + code;
}

SmsLength MeasureSms(const std::string& text) {
  SmsLength gsm{true, 0, 160};
  SmsLength ucs2{false, 0, 70};
  for (size_t i = 0; i < text.size();) {
    const uint32_t cp = NextCodePoint(text, &i);
    const int units = GsmUnits(cp);
    if (units == 0) gsm.gsm7 = false;
    gsm.units += units;
    ucs2.units += cp > 0xFFFF ? 2 : 1;
  }
  return gsm.gsm7 ? gsm : ucs2;
}

}  // namespace otpd
