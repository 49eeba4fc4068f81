#include "phone.h"

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

}  // namespace otpd
