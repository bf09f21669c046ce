// examples/hello.cpp - fiber::thread, fiber::mutex and fiber::condition_variable
// in a small producer/consumer.
#include <fiber/fiber.hpp>

#include <cstdio>
#include <deque>
#include <mutex>

int main() {
  fiber::runtime rt({2, std::chrono::microseconds(4000)});
  fiber::mutex m;
  fiber::condition_variable cv;
  std::deque<int> q;
  bool done = false;
  long sum = 0;
  fiber::thread consumer([&] {
    std::unique_lock<fiber::mutex> lk(m);
    for (;;) {
      cv.wait(lk, [&] { return !q.empty() || done; });
      while (!q.empty()) { sum += q.front(); q.pop_front(); }
      if (done) return;
    }
  });
  fiber::thread producer([&] {
    for (int i = 1; i <= 1000; ++i) {
      { std::lock_guard<fiber::mutex> g(m); q.push_back(i); }
      cv.notify_one();
      if (i % 100 == 0) fiber::this_fiber::yield();
    }
    { std::lock_guard<fiber::mutex> g(m); done = true; }
    cv.notify_one();
  });
  producer.join();
  consumer.join();
  std::printf("sum of 1..1000 = %ld (expected 500500)\n", sum);
  return sum == 500500 ? 0 : 1;
}
