#include "train/signals.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace l4::train {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
std::atomic<int> g_interrupts{0};

void on_signal(int signal) {
  if (signal == SIGINT && g_interrupts.fetch_add(1) >= 1) {
    static const char kMessage[] = "\nsecond interrupt: exiting without saving\n";
    (void)!::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    ::_exit(130);
  }
  g_signal = signal;
  g_stop = true;
}

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

bool stop_requested() { return g_stop.load(); }
void request_stop() { g_stop = true; }
int stop_signal() { return g_signal.load(); }

}  // namespace l4::train
