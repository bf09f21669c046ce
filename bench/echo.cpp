// bench/echo.cpp - TCP echo over loopback: the same closed-loop load against
// three servers (papers/design.md "Blocking system calls").
//
//   fiber   a fiber per connection doing plain read()/write() (interposed:
//           they park the fiber), on --klts KLTs
//   fiber-nopoll  the same with test knob FIBER_KNOB_NO_IDLE_POLL: idle KLTs
//           sleep on the futex and every readiness event hops through the
//           poller thread (the A/B of core/src/idle_poll.hpp)
//   thread  a std::thread per connection doing blocking read()/write()
//   epoll   one thread, non-blocking sockets, a hand-written epoll loop (the
//           ceiling)
//
// The load: one client thread with an epoll loop over --conns connections,
// each with one 64-byte request outstanding; it measures each request's
// round trip.  Prints one line per run: requests/s and p50/p99 in us.
//   echo --server fiber|thread|epoll|all --conns N --seconds S [--klts K]
// `all` runs the three one after the other, each in a child process of its
// own (fork before any runtime starts), so one invocation compares them.
// The same client drives an external server (bench/go/echo.go, or any echo
// server on loopback) with --connect HOST:PORT; --label names it in the line:
//   echo --connect 127.0.0.1:PORT --label go --conns N --seconds S [--klts K]
// A plain program (no Google Benchmark): the client is not a benchmark loop.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fiber/detail/testing.h"
#include "fiber/fiber.h"

namespace {

constexpr std::size_t kMsg = 64;
std::atomic<bool> g_stop{false};

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

int listener(int* port) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) || listen(l, 4096) ||
      getsockname(l, reinterpret_cast<sockaddr*>(&a), &len))
    die("listen");
  *port = ntohs(a.sin_port);
  return l;
}

// Blocking echo of one connection (fiber and thread servers): plain calls.
void echo_blocking(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0 || write(fd, buf, static_cast<std::size_t>(n)) != n) break;
  }
  close(fd);
}

void* echo_fiber(void* p) {
  echo_blocking(static_cast<int>(reinterpret_cast<std::intptr_t>(p)));
  return nullptr;
}

void* fiber_acceptor(void* p) {
  int l = static_cast<int>(reinterpret_cast<std::intptr_t>(p));
  fiber_attr_t a;
  fiber_attr_init(&a);
  a.detached = 1;
  a.stack_size = 64 * 1024;
  for (;;) {
    int c = accept(l, nullptr, nullptr);
    if (c < 0) break;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fiber_t f;
    if (fiber_create(&f, &a, echo_fiber, reinterpret_cast<void*>(static_cast<std::intptr_t>(c)))) die("create");
  }
  return nullptr;
}

void thread_acceptor(int l) {
  for (;;) {
    int c = accept(l, nullptr, nullptr);
    if (c < 0) break;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread(echo_blocking, c).detach();
  }
}

void epoll_server(int l) {
  int ep = epoll_create1(0);
  fcntl(l, F_SETFL, O_NONBLOCK);
  epoll_event ev{EPOLLIN, {}};
  ev.data.fd = l;
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  epoll_event evs[256];
  char buf[4096];
  while (!g_stop.load(std::memory_order_relaxed)) {  // relaxed: a flag only
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        for (int c; (c = accept4(l, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) {
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event ce{EPOLLIN, {}};
          ce.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0) {
        close(fd);
        continue;
      }
      if (write(fd, buf, static_cast<std::size_t>(r)) != r) close(fd);  // 64 bytes: fits
    }
  }
}

// The load: closed loop, one request outstanding per connection.
void client(const sockaddr_in& a, int conns, double seconds, std::vector<std::uint32_t>* lat_us,
            std::uint64_t* reqs) {
  int ep = epoll_create1(0);
  std::vector<int> fds(static_cast<std::size_t>(conns));
  std::vector<std::uint64_t> sent(fds.size());
  std::vector<std::size_t> got(fds.size());
  char msg[kMsg];
  std::memset(msg, 'r', sizeof msg);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fds[i], reinterpret_cast<const sockaddr*>(&a), sizeof a)) die("connect");
    int one = 1;
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fds[i], F_SETFL, O_NONBLOCK);
    epoll_event ev{EPOLLIN, {}};
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  std::uint64_t end = now_ns() + static_cast<std::uint64_t>(seconds * 1e9), warm = now_ns() + 200000000u;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    sent[i] = now_ns();
    if (write(fds[i], msg, kMsg) != static_cast<ssize_t>(kMsg)) die("write");
  }
  epoll_event evs[256];
  char buf[kMsg];
  while (now_ns() < end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int k = 0; k < n; ++k) {
      std::size_t i = evs[k].data.u64;
      ssize_t r = read(fds[i], buf, kMsg - got[i]);
      if (r <= 0) continue;
      got[i] += static_cast<std::size_t>(r);
      if (got[i] < kMsg) continue;
      got[i] = 0;
      std::uint64_t t = now_ns();
      if (t > warm) {
        lat_us->push_back(static_cast<std::uint32_t>((t - sent[i]) / 1000));
        ++*reqs;
      }
      sent[i] = t;
      if (write(fds[i], msg, kMsg) != static_cast<ssize_t>(kMsg)) die("write");
    }
  }
  for (int fd : fds) close(fd);
  close(ep);
}

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  return a;
}

// --connect HOST:PORT (an IPv4 address): the external server to drive.
sockaddr_in parse_connect(const std::string& hp) {
  const std::size_t colon = hp.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  const int port = colon == std::string::npos ? 0 : std::atoi(hp.c_str() + colon + 1);
  if (port <= 0 || port > 65535 || inet_pton(AF_INET, hp.substr(0, colon).c_str(), &a.sin_addr) != 1) {
    std::fprintf(stderr, "echo: --connect wants IPv4:PORT, got '%s'\n", hp.c_str());
    std::exit(2);
  }
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  return a;
}

// The load and the result line, for a server here or an external one.
void measure(const sockaddr_in& a, const std::string& server, int conns, int klts, double seconds) {
  std::vector<std::uint32_t> lat;
  lat.reserve(1 << 22);
  std::uint64_t reqs = 0;
  const double measured = seconds - 0.2;
  client(a, conns, seconds, &lat, &reqs);
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat.empty() ? 0u : lat[static_cast<std::size_t>(p * (lat.size() - 1))]; };
  std::printf("echo server=%s conns=%d klts=%d req/s=%.0f p50_us=%u p99_us=%u\n", server.c_str(), conns, klts,
              static_cast<double>(reqs) / measured, pct(0.5), pct(0.99));
  std::fflush(stdout);
}

}  // namespace

[[noreturn]] void run_one(const std::string& server, int conns, int klts, double seconds);

int main(int argc, char** argv) {
  std::string server = "fiber", connect, label = "external";
  int conns = 100, klts = 2;
  double seconds = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--server") server = argv[i + 1];
    else if (k == "--conns") conns = std::atoi(argv[i + 1]);
    else if (k == "--klts") klts = std::atoi(argv[i + 1]);
    else if (k == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (k == "--connect") connect = argv[i + 1];
    else if (k == "--label") label = argv[i + 1];
  }
  if (!connect.empty()) {  // an external server: only the client runs here
    measure(parse_connect(connect), label, conns, klts, seconds);
    return 0;
  }
  if (server != "all") run_one(server, conns, klts, seconds);
  for (const char* s : {"epoll", "fiber", "thread"}) {
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) run_one(s, conns, klts, seconds);
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) die(s);
  }
  return 0;
}

void run_one(const std::string& server, int conns, int klts, double seconds) {
  int port = 0;
  int l = listener(&port);
  std::thread srv;
  if (server == "fiber" || server == "fiber-nopoll") {
    if (server == "fiber-nopoll") fiber_test_set_knob(FIBER_KNOB_NO_IDLE_POLL, 1);
    fiber_config_t c;
    fiber_config_init(&c);
    c.klts = static_cast<unsigned>(klts);
    if (fiber_init(&c)) die("fiber_init");
    fiber_attr_t a;
    fiber_attr_init(&a);
    a.detached = 1;
    fiber_t f;
    fiber_create(&f, &a, fiber_acceptor, reinterpret_cast<void*>(static_cast<std::intptr_t>(l)));
  } else if (server == "thread") {
    std::thread(thread_acceptor, l).detach();
  } else if (server == "epoll") {
    srv = std::thread(epoll_server, l);
  } else {
    die("--server fiber|fiber-nopoll|thread|epoll");
  }
  measure(loopback(port), server, conns, server.rfind("fiber", 0) == 0 ? klts : 0, seconds);
  g_stop.store(true);
  if (srv.joinable()) srv.join();
  _exit(0);  // detached servers still block in accept/read
}
