// UserDirectory in the `users` table of the SQLite database (schema in
// sqlite_db.cpp). No cache of users: every call reads the table, so edits
// made with plain SQL or by another process show at once. What
// libphonenumber said of each phone is kept beside it (phone_checks, keyed
// by the phone itself, so an edit is never judged by an old verdict). Input is checked here with
// a message naming the bad entry; the table's CHECK constraints are the
// second line for rows written with plain SQL.
#include <cctype>
#include <utility>

#include "core/phone.h"
#include "otp/users.h"
#include "store/batch_writer.h"
#include "store/sqlite_db.h"

namespace otpd {
namespace {

// With the stored verdict on the user's phone, when the plans of this
// process made it (PhonePlansId).
constexpr char kLookupSql[] =
    "SELECT u.user_id, u.phone, u.locale, c.region, c.type, COALESCE(c.e164, c.phone)"
    " FROM users u LEFT JOIN phone_checks c ON c.phone = u.phone AND c.plans = ?2"
    " WHERE u.user_id = ?1";
// Stores a verdict on ?1 while user ?6 still has that phone (a verdict on a
// number no user holds any more is never written), unless it is there
// already (a sync that changes nothing writes nothing).
constexpr char kCheckSql[] =
    "INSERT OR REPLACE INTO phone_checks (phone, plans, e164, region, type)"
    " SELECT ?1, ?2, NULLIF(?3, ?1), ?4, ?5"
    " WHERE EXISTS (SELECT 1 FROM users WHERE user_id = ?6 AND phone = ?1)"
    " AND NOT EXISTS (SELECT 1 FROM phone_checks WHERE phone = ?1 AND plans = ?2"
    " AND e164 IS NULLIF(?3, ?1) AND region = ?4 AND type = ?5)";
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

// Checks the entry and sets *info to its phone normalised (NormalizePhone).
Status ValidateUser(const std::string& user_id, const std::string& phone, PhoneInfo* info) {
  if (user_id.empty()) return Status::InvalidArgument("user ID is empty");
  if (user_id.size() > kMaxUserIdBytes) {
    return Status::InvalidArgument("user ID " + Quote(user_id) + " is longer than " +
                                   std::to_string(kMaxUserIdBytes) + " bytes");
  }
  Status s = NormalizePhone(phone, info);
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
                            std::map<std::string, PhoneInfo>* normalized) {
  std::map<std::string, std::string> first_spelling;  // normalized -> as listed
  for (const auto& entry : users) {
    PhoneInfo phone;
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

// Stores the verdict `info` on `phone` (as users holds it) while user
// `user_id` has that phone; nothing when this process cannot name its
// plans.
Status WriteCheck(SqliteConnection* conn, const std::string& user_id, const std::string& phone,
                  const PhoneInfo& info) {
  if (PhonePlansId().empty() || phone.empty()) return Status::OK();
  SqliteStatement stmt;
  Status s = conn->Prepare(kCheckSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, phone);
  stmt.BindText(2, PhonePlansId());
  stmt.BindText(3, info.e164);
  stmt.BindText(4, info.region);
  stmt.BindText(5, PhoneTypeName(info.type));
  stmt.BindText(6, user_id);
  return stmt.Run();
}

// Writes the user and the verdict on its phone (`phone.e164`, "" for
// none). `locale` only for kUpsertSql (null: keep the user's).
Status RunUpsert(SqliteConnection* conn, const char* sql, const std::string& user_id,
                 const PhoneInfo& phone, const std::string* locale = nullptr) {
  SqliteStatement stmt;
  Status s = conn->Prepare(sql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, user_id);
  stmt.BindText(2, phone.e164);
  if (locale != nullptr) stmt.BindText(3, *locale);
  s = stmt.Run();
  if (!s.ok()) return s;
  return WriteCheck(conn, user_id, phone.e164, phone);
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
// *info: the phone normalised (e164 "" when absent).
Status ValidateListedUser(const User& u, PhoneInfo* info) {
  Status s;
  *info = PhoneInfo();
  if (!u.phone.empty()) {
    s = ValidateUser(u.user_id, u.phone, info);
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

// A verdict to store: ParsePhone's answer for `phone` (as users holds it)
// of user `user_id`.
struct PhoneCheck {
  std::string user_id;
  std::string phone;
  PhoneInfo info;
};

class SqliteUserDirectory : public UserDirectory {
 public:
  explicit SqliteUserDirectory(std::shared_ptr<SqliteDb> db)
      : db_(std::move(db)),
        checks_(BatchWriterOptions{"phone checks", 256, 10000, 200},
                [this](const std::vector<PhoneCheck>& rows) { return WriteChecks(rows); }) {}

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
                               const std::map<std::string, PhoneInfo>& keep);

  // The phone of a row read back, as PhoneAsRead, from the row's stored
  // verdict when it has one (columns 3 to 5 of kLookupSql); otherwise
  // parsed, and the verdict queued for storing.
  std::string PhoneOfRow(const SqliteStatement& stmt);
  Status WriteChecks(const std::vector<PhoneCheck>& rows);

  const std::shared_ptr<SqliteDb> db_;
  // Verdicts found by a Lookup, written behind it: a lost one (a crash, a
  // full queue) is parsed again at the next send.
  BatchWriter<PhoneCheck> checks_;  // last: its thread writes through db_
};

std::string SqliteUserDirectory::PhoneOfRow(const SqliteStatement& stmt) {
  const std::string stored = stmt.ColumnText(1);
  if (stored.empty()) return stored;
  PhoneInfo info;
  const std::string region = stmt.ColumnText(3);
  if (!region.empty() && PhoneTypeFromName(stmt.ColumnText(4), &info.type)) {
    info.region = region;
    info.e164 = stmt.ColumnText(5);
    RememberParsedPhone(stored, info);
    if (info.e164 != stored) RememberParsedPhone(info.e164, info);
  } else if (ParsePhone(stored, &info).ok()) {
    // Best effort: a full queue (the file failing) only costs a parse.
    Status queued = checks_.Add(PhoneCheck{stmt.ColumnText(0), stored, info});
    (void)queued;
  } else {
    return stored;  // the send refuses it (OtpService)
  }
  return PhoneTypeAlwaysRefused(info.type) ? stored : info.e164;
}

Status SqliteUserDirectory::WriteChecks(const std::vector<PhoneCheck>& rows) {
  return db_->WriteBehind([&](SqliteConnection* conn) {
    for (const PhoneCheck& c : rows) {
      Status s = WriteCheck(conn, c.user_id, c.phone, c.info);
      if (!s.ok()) return s;
    }
    return Status::OK();
  });
}

Status SqliteUserDirectory::Lookup(const std::string& user_id, User* user) {
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  SqliteStatement stmt;
  s = conn->Prepare(kLookupSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, user_id);
  stmt.BindText(2, PhonePlansId());
  bool row = false;
  s = stmt.Step(&row);
  if (!s.ok()) return s;
  if (!row) return Status::NotFound("user " + Quote(user_id) + " not found");
  *user = User{stmt.ColumnText(0), PhoneOfRow(stmt), stmt.ColumnText(2)};
  return Status::OK();
}

Status SqliteUserDirectory::Upsert(const std::string& user_id, const std::string& phone) {
  PhoneInfo e164;
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
  std::vector<PhoneInfo> phones;                      // normalised, in order
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
                                           const std::map<std::string, PhoneInfo>& keep) {
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
  std::map<std::string, PhoneInfo> wanted;
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
