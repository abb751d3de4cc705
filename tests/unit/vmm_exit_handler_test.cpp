// handle_exit() fed synthetic exits: device dispatch (including string I/O)
// and the loop action for every kind of exit.
#include <gtest/gtest.h>

#include <vector>

#include "kvm/uapi.h"
#include "vmm/exit_handler.h"

namespace godwit {
namespace {

struct Access {
  char kind;
  uint64_t addr;
  std::vector<uint8_t> data;
};

class RecordingDispatch : public ExitDispatch {
 public:
  std::vector<Access> log;
  uint8_t fill = 0xab;
  void pio_in(uint16_t port, std::span<uint8_t> data) override {
    for (auto& b : data) b = fill++;
    log.push_back({'i', port, {data.begin(), data.end()}});
  }
  void pio_out(uint16_t port, std::span<const uint8_t> data) override {
    log.push_back({'o', port, {data.begin(), data.end()}});
  }
  void mmio_read(uint64_t addr, std::span<uint8_t> data) override {
    for (auto& b : data) b = 0x5a;
    log.push_back({'r', addr, {data.begin(), data.end()}});
  }
  void mmio_write(uint64_t addr, std::span<const uint8_t> data) override {
    log.push_back({'w', addr, {data.begin(), data.end()}});
  }
};

TEST(ExitHandler, PioOutIsDispatched) {
  RecordingDispatch d;
  uint8_t byte = 'x';
  auto out = handle_exit(kvm::IoOut{0x3f8, 1, 1, std::span<const uint8_t>(&byte, 1)}, d);
  EXPECT_EQ(out.action, ExitAction::reenter);
  ASSERT_EQ(d.log.size(), 1u);
  EXPECT_EQ(d.log[0].kind, 'o');
  EXPECT_EQ(d.log[0].addr, 0x3f8u);
  EXPECT_EQ(d.log[0].data, std::vector<uint8_t>{'x'});
}

TEST(ExitHandler, StringIoIsSplitPerElement) {
  RecordingDispatch d;
  uint8_t buf[6] = {};
  auto out = handle_exit(kvm::IoIn{0x60, 2, 3, std::span<uint8_t>(buf, 6)}, d);
  EXPECT_EQ(out.action, ExitAction::reenter);
  ASSERT_EQ(d.log.size(), 3u);
  for (const auto& a : d.log) EXPECT_EQ(a.data.size(), 2u);
  EXPECT_EQ(buf[0], 0xab);
  EXPECT_EQ(buf[5], 0xb0);
}

TEST(ExitHandler, MmioReadFillsData) {
  RecordingDispatch d;
  uint8_t buf[4] = {};
  auto out = handle_exit(kvm::MmioRead{0xd0000008, std::span<uint8_t>(buf, 4)}, d);
  EXPECT_EQ(out.action, ExitAction::reenter);
  EXPECT_EQ(buf[3], 0x5a);
  uint32_t v = 7;
  (void)handle_exit(
      kvm::MmioWrite{0xd0000000, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&v), 4)}, d);
  EXPECT_EQ(d.log.back().kind, 'w');
}

TEST(ExitHandler, ActionsForNonIoExits) {
  RecordingDispatch d;
  EXPECT_EQ(handle_exit(kvm::Interrupted{}, d).action, ExitAction::interrupted);
  EXPECT_EQ(handle_exit(kvm::DirtyRingFull{}, d).action, ExitAction::interrupted);
  EXPECT_EQ(handle_exit(kvm::IrqWindowOpen{}, d).action, ExitAction::reenter);
  auto sd = handle_exit(kvm::Shutdown{}, d);
  EXPECT_EQ(sd.action, ExitAction::fatal);
  EXPECT_NE(sd.reason.find("triple fault"), std::string::npos);
  EXPECT_EQ(handle_exit(kvm::SystemEvent{KVM_SYSTEM_EVENT_RESET, 0}, d).action,
            ExitAction::shutdown);
  EXPECT_EQ(handle_exit(kvm::SystemEvent{KVM_SYSTEM_EVENT_CRASH, 0}, d).action, ExitAction::fatal);
  auto ie = handle_exit(kvm::InternalError{1, {}}, d);
  EXPECT_EQ(ie.action, ExitAction::fatal);
  EXPECT_FALSE(ie.reason.empty());
  EXPECT_EQ(handle_exit(kvm::FailEntry{0x80000021, 0}, d).action, ExitAction::fatal);
  EXPECT_EQ(handle_exit(kvm::Unknown{999}, d).action, ExitAction::fatal);
  EXPECT_TRUE(d.log.empty());
}

}  // namespace
}  // namespace godwit
