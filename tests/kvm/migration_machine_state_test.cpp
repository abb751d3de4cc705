// The state stream carries a real machine: pause the self-checking guest
// mid-run (2 vCPUs, virtio disk + rng), save its MachineState, encode it,
// decode the bytes into a fresh struct (RAM copied beside it, as a memory
// file would), restore into a second VM, and the guest still finishes with
// PASS. Also checks that what KVM returns survives the codec bit for bit,
// i.e. that no field the format drops (padding, reserved) is non-zero.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "migration/kvm_state_codec.h"
#include "migration/machine_state_codec.h"
#include "test_util.h"
#include "vmm/machine.h"

namespace godwit {
namespace {

using namespace std::chrono_literals;

VmConfig selfcheck_config(const std::string& disk) {
  VmConfig c;
  c.memory_size = 256 * kMiB;
  c.vcpus = 2;
  c.serial.kind = SerialConfig::Kind::none;
  c.boot = ImageBoot{test::build_path("guests/selfcheck.img")};
  c.guest_params = {"selfchk.rounds=25"};
  c.disks.push_back(DiskConfig{.path = disk, .serial = "mig"});
  c.rng = true;
  return c;
}

bool wait_for(Machine& m, const std::string& needle, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (m.devices().console_tail().find(needle) != std::string::npos) return true;
    if (m.state() == RunState::shutdown) return false;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

/// Waits for the VM to stop, forcing a stop (status 99) after `timeout`.
int wait_stopped_or_kill(Machine& m, std::chrono::seconds timeout) {
  std::jthread watchdog([&m, timeout](std::stop_token st) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!st.stop_requested() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(50ms);
    if (!st.stop_requested()) m.request_stop(99, "test watchdog");
  });
  return m.wait_stopped();
}

TEST(MigrationMachineState, EncodedSelfcheckRestoresIntoASecondVmAndPasses) {
  GODWIT_REQUIRE_KVM();
  test::TempFile disk("migration-state-disk.img", std::string(64 * 1024, '\0'));
  VmConfig cfg = selfcheck_config(disk.path());
  auto a = Machine::create(cfg);
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_TRUE((*a)->start());
  ASSERT_TRUE(wait_for(**a, "cpu1 round 2 ok", 60s)) << (*a)->devices().console_tail();
  ASSERT_TRUE((*a)->pause());
  auto saved = (*a)->save_state();
  ASSERT_TRUE(saved) << saved.error().message;
  ASSERT_EQ((*a)->devices().console_tail().find("PASS"), std::string::npos)
      << "guest finished before the save";
  (*a)->request_stop(0, "state moved to the second VM");
  (*a)->wait_stopped();
  a->reset();

  auto bytes = migration::encode_machine_state(*saved);
  ASSERT_TRUE(bytes) << bytes.error().message;
  MachineState decoded;
  decoded.memory = saved->memory;  // the RAM travels separately
  auto ok = migration::decode_machine_state(*bytes, decoded);
  ASSERT_TRUE(ok) << ok.error().message;

  // Bit for bit what KVM and the devices returned.
  EXPECT_TRUE(migration::same_state(decoded.vm, saved->vm));
  ASSERT_EQ(decoded.vcpus.size(), 2u);
  for (size_t i = 0; i < decoded.vcpus.size(); ++i)
    EXPECT_TRUE(migration::same_state(decoded.vcpus[i], saved->vcpus[i])) << "vcpu " << i;
  EXPECT_EQ(decoded.devices.serial, saved->devices.serial);
  ASSERT_EQ(decoded.virtio.size(), 2u);
  EXPECT_EQ(decoded.virtio, saved->virtio);
  saved.value() = MachineState{};  // only the decoded copy is used from here on

  auto b = Machine::create(cfg, BootMode::skip);
  ASSERT_TRUE(b) << b.error().message;
  auto restored = (*b)->restore_state(decoded);
  ASSERT_TRUE(restored) << restored.error().message;
  ASSERT_TRUE((*b)->start());
  int status = wait_stopped_or_kill(**b, 180s);
  std::string after = (*b)->devices().console_tail();
  EXPECT_EQ(status, 0) << after;
  EXPECT_NE(after.find("PASS"), std::string::npos) << after;
  EXPECT_EQ(after.find("FAIL"), std::string::npos) << after;
}

}  // namespace
}  // namespace godwit
