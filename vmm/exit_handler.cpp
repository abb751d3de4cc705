// handle_exit(): maps each KVM exit to device accesses and a loop action.
#include "vmm/exit_handler.h"

#include <type_traits>

#include "kvm/uapi.h"

namespace godwit {
namespace {

std::string system_event_name(uint32_t type) {
  switch (type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
      return "shutdown";
    case KVM_SYSTEM_EVENT_RESET:
      return "reset";
    case KVM_SYSTEM_EVENT_CRASH:
      return "crash";
    default:
      return "type " + std::to_string(type);
  }
}

}  // namespace

ExitOutcome handle_exit(const kvm::VcpuExit& exit, ExitDispatch& dispatch) {
  return std::visit(
      [&](const auto& e) -> ExitOutcome {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, kvm::IoIn>) {
          for (uint32_t i = 0; i < e.count; ++i)
            dispatch.pio_in(e.port, e.data.subspan(size_t{i} * e.size, e.size));
          return {};
        } else if constexpr (std::is_same_v<T, kvm::IoOut>) {
          for (uint32_t i = 0; i < e.count; ++i)
            dispatch.pio_out(e.port, e.data.subspan(size_t{i} * e.size, e.size));
          return {};
        } else if constexpr (std::is_same_v<T, kvm::MmioRead>) {
          dispatch.mmio_read(e.addr, e.data);
          return {};
        } else if constexpr (std::is_same_v<T, kvm::MmioWrite>) {
          dispatch.mmio_write(e.addr, e.data);
          return {};
        } else if constexpr (std::is_same_v<T, kvm::Interrupted> ||
                             std::is_same_v<T, kvm::DirtyRingFull>) {
          // A full dirty ring is drained by the collector; the vCPU simply
          // leaves KVM_RUN so that pause/stop and harvesting can happen.
          return {ExitAction::interrupted, {}};
        } else if constexpr (std::is_same_v<T, kvm::IrqWindowOpen> || std::is_same_v<T, kvm::Hlt>) {
          return {};
        } else if constexpr (std::is_same_v<T, kvm::Shutdown>) {
          return {ExitAction::fatal, "guest triple fault (KVM_EXIT_SHUTDOWN)"};
        } else if constexpr (std::is_same_v<T, kvm::SystemEvent>) {
          if (e.type == KVM_SYSTEM_EVENT_CRASH)
            return {ExitAction::fatal, "guest reported a crash (KVM_EXIT_SYSTEM_EVENT crash)"};
          return {ExitAction::shutdown, "guest system event: " + system_event_name(e.type)};
        } else {
          // FailEntry, InternalError, Debug, Unknown: describe() names them.
          return {ExitAction::fatal, kvm::describe(exit)};
        }
      },
      exit);
}

}  // namespace godwit
