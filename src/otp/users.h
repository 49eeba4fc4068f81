// UserDirectory: who the users are and which phone each one's codes go to.
//
// The SQLite implementation reads the `users` table on every call, so edits
// made with plain SQL, `otpd users ...` or another process are seen by the
// next request without a restart. User IDs are case-insensitive (the table
// is COLLATE NOCASE); phones are E.164, checked here and by the schema.
// Thread-safe.
#ifndef OTPD_USERS_H_
#define OTPD_USERS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace otpd {

class SqliteDb;

struct User {
  std::string user_id;      // as stored
  std::string phone;        // E.164, or empty when the user has no phone on record
  std::string locale = {};  // language tag for the SMS template ("es-MX"); empty: default
};

class UserDirectory {
 public:
  virtual ~UserDirectory() = default;

  // Finds the user (case-insensitive), locale included. NotFound when
  // there is none.
  virtual Status Lookup(const std::string& user_id, User* user) = 0;

  // Adds the user or changes their phone (their locale stays). InvalidArgument,
  // and nothing written, for an empty or over-long ID or a phone that is not E.164.
  virtual Status Upsert(const std::string& user_id, const std::string& phone) = 0;

  // Upserts every user in one transaction: all or nothing. An empty phone
  // stores the user without one; a locale is set when not empty (an empty
  // one keeps the user's). InvalidArgument naming the first bad entry (a
  // phone not E.164, a locale that is no language tag, two entries that are
  // one user in different case), and nothing written.
  virtual Status UpsertAll(const std::vector<User>& users) = 0;

  // Removes the user and any live code of theirs. NotFound when absent.
  virtual Status Remove(const std::string& user_id) = 0;

  // Every user, ordered by ID.
  virtual Status List(std::vector<User>* users) = 0;

  // Makes the users that came from the config file equal `users` (ID ->
  // phone), in one transaction: upserts each, and removes users that an
  // earlier sync added but `users` no longer lists. Users added with SQL or
  // the CLI are never removed by a sync. All-or-nothing: any bad entry
  // fails the whole sync with InvalidArgument naming it, and nothing changes.
  virtual Status SyncFromConfig(const std::map<std::string, std::string>& users) = 0;
};

// A user directory in the `users` table of `db`.
Status NewSqliteUserDirectory(std::shared_ptr<SqliteDb> db, std::unique_ptr<UserDirectory>* users);

}  // namespace otpd

#endif  // OTPD_USERS_H_
