#include "vmupdate/interrupt.hpp"

#include <atomic>

namespace vmupdate {
namespace {

// Lock-free, so that a signal handler may set it.
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);

} // namespace

void request_interrupt() noexcept {
    interrupted.store(true);
}

bool interrupt_requested() noexcept {
    return interrupted.load();
}

} // namespace vmupdate
