// Users as text: the CSV that `otpd users import` reads and `otpd users
// export` writes, plus the old service's USER_PHONE_DATABASE lines.
//
// Accepted, one user per line:
//   user_id,phone[,locale]         CSV; a field may be "quoted" ("" is a quote)
//   "abc": "+11111111111",         a line of the old service's Python dict
// An empty phone is a user without one; an empty locale keeps the user's.
// A UTF-8 byte order mark (as spreadsheets write it) is skipped. An optional
// header row names the columns (user_id, phone, locale, any case, in any
// order, user_id required) and sets the order of the lines after it.
// Blank lines, # comments, and the dict's own `NAME = {` and `}` lines are
// skipped, so the old mock_database.py dictionary can be pasted as it is.
// Spaces around fields are ignored. Pure functions; thread-safe.
#ifndef OTPD_USERS_CSV_H_
#define OTPD_USERS_CSV_H_

#include <string>
#include <vector>

#include "core/status.h"
#include "otp/users.h"

namespace otpd {

// Parses `text`. On success *users holds every user in file order. Every
// bad line (unreadable, too few or too many fields, empty or over-long ID,
// phone not E.164, locale not a language tag, an ID seen before in any
// case) adds one "line N: ..." entry to *errors; then the result is
// InvalidArgument and *users must be ignored.
Status ParseUsersCsv(const std::string& text, std::vector<User>* users,
                     std::vector<std::string>* errors);

// The header line `user_id,phone,locale` and one CSV line per user,
// quoting fields that need it, so ParseUsersCsv(FormatUsersCsv(u)) gives u
// back, users without a phone or a locale included.
std::string FormatUsersCsv(const std::vector<User>& users);

}  // namespace otpd

#endif  // OTPD_USERS_CSV_H_
