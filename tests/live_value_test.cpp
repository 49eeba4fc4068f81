#include "core/live_value.h"

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace otpd {
namespace {

struct Pair {
  int a = 0;
  int b = 0;  // always -a: a reader must never see a torn pair
};

}  // namespace

TEST_CASE("LiveValue: Set replaces what later Gets see; old references stay valid") {
  LiveValue<std::string> v("first");
  const std::string& old = v.Get();
  v.Set("second");
  CHECK(v.Get() == "second");
  CHECK(old == "first");
}

TEST_CASE("LiveValue: readers see whole values while a writer replaces them") {
  LiveValue<Pair> v(Pair{0, 0});
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; t++) {
    readers.emplace_back([&] {
      int last = 0;
      while (!stop) {
        const Pair& p = v.Get();
        if (p.a != -p.b || p.a < last) torn++;
        last = p.a;
      }
    });
  }
  for (int i = 1; i <= 2000; i++) v.Set(Pair{i, -i});
  stop = true;
  for (auto& t : readers) t.join();
  CHECK(torn == 0);
  CHECK(v.Get().a == 2000);
}

}  // namespace otpd
