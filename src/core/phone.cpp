#include "core/phone.h"

namespace otpd {

bool IsE164(std::string_view phone) {
  if (phone.size() < 3 || phone.size() > 16 || phone[0] != '+') return false;
  if (phone[1] < '1' || phone[1] > '9') return false;
  for (size_t i = 2; i < phone.size(); i++) {
    if (phone[i] < '0' || phone[i] > '9') return false;
  }
  return true;
}

std::string MaskPhone(std::string_view phone) {
  if (!IsE164(phone)) return "***";
  std::string out(phone);
  const size_t digits = phone.size() - 1;
  const size_t keep_tail = digits > 4 ? 3 : 0;
  for (size_t i = 2; i < out.size() - keep_tail; i++) out[i] = '*';
  return out;
}

std::string NormalizeUserId(std::string_view user_id) {
  std::string out(user_id);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

Status ParseCountryCodes(std::string_view text, std::vector<std::string>* codes) {
  codes->clear();
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    bool ok = !item.empty() && item.size() <= 3 && item[0] != '0';
    for (char c : item) ok = ok && c >= '0' && c <= '9';
    if (!ok) {
      return Status::InvalidArgument("'" + std::string(item) +
                                     "' is not a country calling code (1 to 3 digits, like 1 or 44)");
    }
    codes->emplace_back(item);
    start = comma + 1;
  }
  return Status::OK();
}

}  // namespace otpd
