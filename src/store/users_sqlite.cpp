// UserDirectory in the `users` table of the SQLite database (schema in
// sqlite_db.cpp). No cache: every call reads the table, so edits made with
// plain SQL or by another process show at once. Input is checked here with
// a message naming the bad entry; the table's CHECK constraints are the
// second line for rows written with plain SQL.
#include <cctype>
#include <utility>

#include "core/phone.h"
#include "otp/users.h"
#include "store/sqlite_db.h"

namespace otpd {
namespace {

constexpr char kLookupSql[] = "SELECT user_id, phone, locale FROM users WHERE user_id = ?1";
constexpr char kListSql[] = "SELECT user_id, phone, locale FROM users ORDER BY user_id";
// ?2 "" stores no phone (NULL); ?3 (the locale) unbound or "" keeps the
// user's locale as it is.
constexpr char kUpsertSql[] =
    "INSERT INTO users (user_id, phone, locale, from_config)"
    " VALUES (?1, NULLIF(?2, ''), NULLIF(?3, ''), 0)"
    " ON CONFLICT (user_id) DO UPDATE SET phone = excluded.phone,"
    " locale = COALESCE(excluded.locale, users.locale), from_config = 0,"
    " updated_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
// A user first added with SQL or the CLI keeps from_config = 0 when the
// config also lists it: the config sets its phone, but a later sync that no
// longer lists it never removes it (users.h). Rows that already match are
// left alone, so a sync that changes nothing writes nothing.
constexpr char kSyncUpsertSql[] =
    "INSERT INTO users (user_id, phone, from_config) VALUES (?1, ?2, 1)"
    " ON CONFLICT (user_id) DO UPDATE SET phone = excluded.phone,"
    " updated_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    " WHERE users.phone IS NOT excluded.phone";
constexpr char kConfigUsersSql[] = "SELECT user_id, phone, locale FROM users WHERE from_config = 1";
constexpr char kDeleteUserSql[] = "DELETE FROM users WHERE user_id = ?1";
constexpr char kDeleteCodeSql[] = "DELETE FROM otps WHERE user_id = ?1";

// User input quoted for a message, cut short when long.
std::string Quote(const std::string& text) {
  if (text.size() <= 40) return "\"" + text + "\"";
  return "\"" + text.substr(0, 37) + "...\"";
}

// Checks the entry and sets *e164 to its phone normalised (NormalizePhone).
Status ValidateUser(const std::string& user_id, const std::string& phone, std::string* e164) {
  if (user_id.empty()) return Status::InvalidArgument("user ID is empty");
  if (user_id.size() > kMaxUserIdBytes) {
    return Status::InvalidArgument("user ID " + Quote(user_id) + " is longer than " +
                                   std::to_string(kMaxUserIdBytes) + " bytes");
  }
  Status s = NormalizePhone(phone, e164);
  if (!s.ok()) return Status::InvalidArgument("user " + Quote(user_id) + ": " + s.message());
  return Status::OK();
}

// A phone as read back: rows written with plain SQL get the same
// normalisation as the CLI's ("+440207946..." -> "+44207946..."); one that
// does not parse is kept, and the send refuses it (OtpService).
std::string PhoneAsRead(const std::string& stored) {
  std::string e164;
  if (stored.empty() || !NormalizePhone(stored, &e164).ok()) return stored;
  return e164;
}

// Checks every entry and normalizes the IDs. Two entries that differ only
// in case are the same user: refused rather than picking one.
Status NormalizeConfigUsers(const std::map<std::string, std::string>& users,
                            std::map<std::string, std::string>* normalized) {
  std::map<std::string, std::string> first_spelling;  // normalized -> as listed
  for (const auto& entry : users) {
    std::string phone;
    Status s = ValidateUser(entry.first, entry.second, &phone);
    if (!s.ok()) return s;
    const std::string id = NormalizeUserId(entry.first);
    auto inserted = first_spelling.emplace(id, entry.first);
    if (!inserted.second) {
      return Status::InvalidArgument("users " + Quote(inserted.first->second) + " and " +
                                     Quote(entry.first) +
                                     " are the same user (IDs are case-insensitive)");
    }
    (*normalized)[id] = phone;
  }
  return Status::OK();
}

Status RunForUser(SqliteConnection* conn, const char* sql, const std::string& user_id) {
  SqliteStatement stmt;
  Status s = conn->Prepare(sql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, user_id);
  return stmt.Run();
}

// `locale` only for kUpsertSql (null: keep the user's).
Status RunUpsert(SqliteConnection* conn, const char* sql, const std::string& user_id,
                 const std::string& phone, const std::string* locale = nullptr) {
  SqliteStatement stmt;
  Status s = conn->Prepare(sql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, user_id);
  stmt.BindText(2, phone);
  if (locale != nullptr) stmt.BindText(3, *locale);
  return stmt.Run();
}

// A language tag as the schema takes it: 1 to 35 of [A-Za-z0-9_-]; "" is
// none.
Status ValidateLocale(const std::string& user_id, const std::string& locale) {
  bool ok = locale.size() <= 35;
  for (char c : locale) {
    ok = ok && (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
  }
  if (ok) return Status::OK();
  return Status::InvalidArgument("locale " + Quote(locale) + " of user " + Quote(user_id) +
                                 " is not a language tag such as es or pt-BR");
}

// An entry of UpsertAll: as ValidateUser, but the phone may be absent
// (a user without a phone, as export writes one), and the locale is checked.
// *e164: the phone normalised ("" when absent).
Status ValidateListedUser(const User& u, std::string* e164) {
  Status s;
  e164->clear();
  if (!u.phone.empty()) {
    s = ValidateUser(u.user_id, u.phone, e164);
  } else if (u.user_id.empty() || u.user_id.size() > kMaxUserIdBytes) {
    s = Status::InvalidArgument("user ID " + Quote(u.user_id) + " is empty or longer than " +
                                std::to_string(kMaxUserIdBytes) + " bytes");
  }
  return s.ok() ? ValidateLocale(u.user_id, u.locale) : s;
}

// Deletes the user's row and code; *removed tells whether there was a row.
// REQUIRES: inside a transaction.
Status DeleteUserAndCode(SqliteConnection* conn, const std::string& user_id, bool* removed) {
  Status s = RunForUser(conn, kDeleteUserSql, user_id);
  if (!s.ok()) return s;
  *removed = conn->Changes() > 0;
  return RunForUser(conn, kDeleteCodeSql, user_id);
}

Status ReadUsers(SqliteConnection* conn, const char* sql, std::vector<User>* users) {
  SqliteStatement stmt;
  Status s = conn->Prepare(sql, &stmt);
  bool row = true;
  while (s.ok()) {
    s = stmt.Step(&row);
    if (!s.ok() || !row) break;
    users->push_back(User{stmt.ColumnText(0), PhoneAsRead(stmt.ColumnText(1)), stmt.ColumnText(2)});
  }
  return s;
}

class SqliteUserDirectory : public UserDirectory {
 public:
  explicit SqliteUserDirectory(std::shared_ptr<SqliteDb> db) : db_(std::move(db)) {}

  Status Lookup(const std::string& user_id, User* user) override;
  Status Upsert(const std::string& user_id, const std::string& phone) override;
  Status UpsertAll(const std::vector<User>& users) override;
  Status Remove(const std::string& user_id) override;
  Status List(std::vector<User>* users) override;
  Status SyncFromConfig(const std::map<std::string, std::string>& users) override;

 private:
  // Removes config users that `keep` no longer lists, with their codes.
  // REQUIRES: inside a transaction.
  static Status RemoveUnlisted(SqliteConnection* conn,
                               const std::map<std::string, std::string>& keep);

  const std::shared_ptr<SqliteDb> db_;
};

Status SqliteUserDirectory::Lookup(const std::string& user_id, User* user) {
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  SqliteStatement stmt;
  s = conn->Prepare(kLookupSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, user_id);
  bool row = false;
  s = stmt.Step(&row);
  if (!s.ok()) return s;
  if (!row) return Status::NotFound("user " + Quote(user_id) + " not found");
  *user = User{stmt.ColumnText(0), PhoneAsRead(stmt.ColumnText(1)), stmt.ColumnText(2)};
  return Status::OK();
}

Status SqliteUserDirectory::Upsert(const std::string& user_id, const std::string& phone) {
  std::string e164;
  Status s = ValidateUser(user_id, phone, &e164);
  SqliteLease lease;
  if (s.ok()) s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  return WriteTransaction(
      conn, [&] { return RunUpsert(conn, kUpsertSql, NormalizeUserId(user_id), e164); });
}

Status SqliteUserDirectory::UpsertAll(const std::vector<User>& users) {
  std::map<std::string, std::string> first_spelling;  // normalized -> as listed
  std::vector<std::string> phones;                    // normalised, in order
  for (const User& u : users) {
    phones.emplace_back();
    Status s = ValidateListedUser(u, &phones.back());
    if (!s.ok()) return s;
    auto inserted = first_spelling.emplace(NormalizeUserId(u.user_id), u.user_id);
    if (!inserted.second) {
      return Status::InvalidArgument("users " + Quote(inserted.first->second) + " and " +
                                     Quote(u.user_id) +
                                     " are the same user (IDs are case-insensitive)");
    }
  }
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  SqliteTransaction txn(conn);
  s = txn.Begin();
  for (size_t i = 0; s.ok() && i < users.size(); ++i) {
    s = RunUpsert(conn, kUpsertSql, NormalizeUserId(users[i].user_id), phones[i], &users[i].locale);
  }
  if (s.ok()) s = txn.Commit();
  return s;  // on failure txn's destructor rolls back every change
}

Status SqliteUserDirectory::Remove(const std::string& user_id) {
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  SqliteTransaction txn(conn);
  s = txn.Begin();
  bool removed = false;
  if (s.ok()) s = DeleteUserAndCode(conn, user_id, &removed);
  if (s.ok() && !removed) return Status::NotFound("user " + Quote(user_id) + " not found");
  if (s.ok()) s = txn.Commit();
  return s;
}

Status SqliteUserDirectory::List(std::vector<User>* users) {
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  std::vector<User> found;
  if (s.ok()) s = ReadUsers(conn, kListSql, &found);
  if (s.ok()) users->swap(found);
  return s;
}

Status SqliteUserDirectory::RemoveUnlisted(SqliteConnection* conn,
                                           const std::map<std::string, std::string>& keep) {
  std::vector<User> config_users;
  Status s = ReadUsers(conn, kConfigUsersSql, &config_users);
  for (auto it = config_users.begin(); s.ok() && it != config_users.end(); ++it) {
    if (keep.count(NormalizeUserId(it->user_id)) != 0) continue;
    bool removed = false;
    s = DeleteUserAndCode(conn, it->user_id, &removed);
  }
  return s;
}

Status SqliteUserDirectory::SyncFromConfig(const std::map<std::string, std::string>& users) {
  std::map<std::string, std::string> wanted;
  Status s = NormalizeConfigUsers(users, &wanted);
  SqliteLease lease;
  if (s.ok()) s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  SqliteTransaction txn(conn);
  s = txn.Begin();
  for (auto it = wanted.begin(); s.ok() && it != wanted.end(); ++it) {
    s = RunUpsert(conn, kSyncUpsertSql, it->first, it->second);
  }
  if (s.ok()) s = RemoveUnlisted(conn, wanted);
  if (s.ok()) s = txn.Commit();
  return s;  // on failure txn's destructor rolls back every change
}

}  // namespace

Status NewSqliteUserDirectory(std::shared_ptr<SqliteDb> db, std::unique_ptr<UserDirectory>* users) {
  if (db == nullptr) return Status::InvalidArgument("NewSqliteUserDirectory needs a database");
  users->reset(new SqliteUserDirectory(std::move(db)));
  return Status::OK();
}

}  // namespace otpd
