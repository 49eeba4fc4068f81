#include "app/users_csv.h"

#include <doctest/doctest.h>

#include "store/sqlite_db.h"
#include "test_util.h"

namespace otpd {
namespace {

std::vector<User> MustParse(const std::string& text) {
  std::vector<User> users;
  std::vector<std::string> errors;
  Status s = ParseUsersCsv(text, &users, &errors);
  REQUIRE_MESSAGE(s.ok(), s.ToString() << " " << (errors.empty() ? "" : errors[0]));
  return users;
}

std::vector<std::string> Errors(const std::string& text) {
  std::vector<User> users;
  std::vector<std::string> errors;
  CHECK(ParseUsersCsv(text, &users, &errors).IsInvalidArgument());
  return errors;
}

}  // namespace

// Internal linkage, in User's namespace so std::vector's == finds it.
static bool operator==(const User& a, const User& b) {
  return a.user_id == b.user_id && a.phone == b.phone && a.locale == b.locale;
}

TEST_CASE("users CSV: header optional, spaces, comments and blank lines") {
  const std::vector<User> want = {{"abc", "+12015551111"}, {"Bob", "+12025552222"}};
  CHECK(MustParse("abc,+12015551111\nBob,+12025552222\n") == want);
  CHECK(MustParse("User_ID,Phone\r\nabc , +12015551111\r\n\r\n# note\r\nBob,+12025552222") == want);
  CHECK(MustParse("\"user_id\",\"phone\"\n\"abc\",\"+12015551111\"\nBob,+12025552222\n") == want);
  CHECK(MustParse("").empty());
}

TEST_CASE("users CSV: the old service's USER_PHONE_DATABASE lines, pasted as they are") {
  const std::string py =
      "USER_PHONE_DATABASE = {\n"
      "    \"abc\": \"+12015551111\",\n"
      "    \"user456\": \"+12345678901\",\n"
      "    # Add more users as needed\n"
      "    \"john_doe\": \"+12185553210\"\n"
      "}\n";
  const std::vector<User> want = {
      {"abc", "+12015551111"}, {"user456", "+12345678901"}, {"john_doe", "+12185553210"}};
  CHECK(MustParse(py) == want);
  // A CSV ID may contain ':' when quoted.
  CHECK(MustParse("\"a:b\",+12015551111\n") == std::vector<User>{{"a:b", "+12015551111"}});
}

TEST_CASE("users CSV: every bad line is reported with its number") {
  const auto errors = Errors(
      "user_id,phone\n"
      "abc,+12015551111\n"
      "bad,555-1234\n"
      "ABC,+12035553333\n"
      ",+12055554444\n"
      "\"open,+12155555555\n"
      "justone\n"
      "x,+12165556666,es,extra\n"
      "ok,+12175557777\n");
  REQUIRE(errors.size() == 6);
  CHECK(errors[0].rfind("line 3: phone '555-1234'", 0) == 0);
  CHECK(errors[1] == "line 4: user 'ABC' already on line 2");
  CHECK(errors[2] == "line 5: empty user ID");
  CHECK(errors[3] == "line 6: unterminated quote");
  CHECK(errors[4].rfind("line 7: expected", 0) == 0);
  CHECK(errors[5] == "line 8: unexpected text after the last column");
  CHECK(Errors(std::string(200, 'a') + ",+12015551111\n")[0].find("longer than") !=
        std::string::npos);
}

TEST_CASE("users CSV: export round-trips through import, odd IDs included") {
  const std::vector<User> users = {
      {"plain", "+12015551111"}, {"with,comma", "+12025552222"}, {"with \"quote\"", "+12035553333"},
      {"#hash", "+12055554444"}, {" padded ", "+12155555555"},   {"user_id", "+12165556666"}};
  const std::string csv = FormatUsersCsv(users);
  CHECK(csv.rfind("user_id,phone,locale\nplain,+12015551111,\n\"with,comma\",", 0) == 0);
  CHECK(MustParse(csv) == users);
}

TEST_CASE("users CSV: a spreadsheet's byte order mark and its own column order") {
  const std::string bom = "\xEF\xBB\xBF";
  CHECK(MustParse(bom + "abc,+12015551111\n") == std::vector<User>{{"abc", "+12015551111"}});
  CHECK(MustParse(bom + "user_id,phone\nabc,+12015551111\n") ==
        std::vector<User>{{"abc", "+12015551111"}});
  CHECK(MustParse("Phone,Locale,User_ID\r\n+12015551111,es-MX,abc\r\n,,nophone\r\n") ==
        std::vector<User>{{"abc", "+12015551111", "es-MX"}, {"nophone", "", ""}});
  CHECK(MustParse("user_id\nalone\n") == std::vector<User>{{"alone", "", ""}});
  // With a header, every line has its columns.
  CHECK(Errors("phone,user_id,locale\n+12015551111,abc\n")[0] ==
        "line 2: expected 3 fields, as the header");
  // Not a header (an unknown name): a data line, and a bad one.
  CHECK(Errors("user_id,mobile\n")[0].rfind("line 1: phone 'mobile'", 0) == 0);
  CHECK(Errors("abc,+12015551111,es MX\n")[0] ==
        "line 1: locale 'es MX' is not a language tag (es, pt-BR)");
}

TEST_CASE("users CSV: export round-trips users without a phone and locales") {
  const std::vector<User> users = {
      {"a", "", ""}, {"b", "+12025552222", "pt-BR"}, {"c", "", "es"}, {"d", "+12035553333", ""}};
  const std::string csv = FormatUsersCsv(users);
  CHECK(csv == "user_id,phone,locale\na,,\nb,+12025552222,pt-BR\nc,,es\nd,+12035553333,\n");
  CHECK(MustParse(csv) == users);
}

TEST_CASE("UserDirectory::UpsertAll: users without a phone, locales set or kept") {
  TempDir dir;
  SqliteOptions options;
  options.path = dir.File("otpd.db");
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  std::unique_ptr<UserDirectory> users;
  REQUIRE(NewSqliteUserDirectory(db, &users).ok());
  REQUIRE(users->UpsertAll({{"nophone", "", ""}, {"maria", "+12015551111", "es-MX"}}).ok());
  std::vector<User> list;
  REQUIRE(users->List(&list).ok());
  CHECK(list == std::vector<User>{{"maria", "+12015551111", "es-MX"}, {"nophone", "", ""}});
  // A new phone keeps the locale; an empty locale keeps it too.
  REQUIRE(users->Upsert("maria", "+12025552222").ok());
  REQUIRE(users->UpsertAll({{"maria", "+12035553333", ""}}).ok());
  User maria;
  REQUIRE(users->Lookup("maria", &maria).ok());
  CHECK(maria.phone == "+12035553333");
  CHECK(maria.locale == "es-MX");
  REQUIRE(users->UpsertAll({{"maria", "+12035553333", "pt"}}).ok());
  REQUIRE(users->Lookup("maria", &maria).ok());
  CHECK(maria.locale == "pt");
  CHECK(users->UpsertAll({{"x", "+12015551111", "not a tag"}}).IsInvalidArgument());
  CHECK(users->UpsertAll({{"", "", ""}}).IsInvalidArgument());
}

TEST_CASE("UserDirectory::UpsertAll is all or nothing") {
  TempDir dir;
  SqliteOptions options;
  options.path = dir.File("otpd.db");
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  std::unique_ptr<UserDirectory> users;
  REQUIRE(NewSqliteUserDirectory(db, &users).ok());
  REQUIRE(users->Upsert("keep", "+12195559999").ok());
  Status s = users->UpsertAll({{"a", "+12015551111"}, {"b", "not-a-phone"}});
  CHECK(s.IsInvalidArgument());
  s = users->UpsertAll({{"a", "+12015551111"}, {"A", "+12025552222"}});
  CHECK(s.IsInvalidArgument());
  std::vector<User> list;
  REQUIRE(users->List(&list).ok());
  CHECK(list.size() == 1);
  REQUIRE(users->UpsertAll({{"Amy", "+12015551111"}, {"keep", "+12025552222"}}).ok());
  REQUIRE(users->List(&list).ok());
  CHECK(list == std::vector<User>{{"amy", "+12015551111"}, {"keep", "+12025552222"}});
}

}  // namespace otpd
