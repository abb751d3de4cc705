// The vCPU state is complete: pause the self-checking guest mid-run, save all
// vCPU + VM-wide + device state and guest memory, build a second VM in the
// same process, restore, resume, and the guest still finishes with PASS.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <thread>

#include "test_util.h"
#include "vmm/machine.h"

namespace godwit {
namespace {

using namespace std::chrono_literals;

VmConfig selfcheck_config(uint32_t vcpus, uint32_t rounds) {
  VmConfig c;
  c.memory_size = 256 * kMiB;
  c.vcpus = vcpus;
  c.serial.kind = SerialConfig::Kind::none;
  c.boot = ImageBoot{test::build_path("guests/selfcheck.img")};
  c.guest_params = {"selfchk.rounds=" + std::to_string(rounds)};
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

/// Starts `cfg`, waits for `marker`, pauses, saves, and stops the VM: the
/// state as a second VM would receive it (nullopt, with a failure, if not).
std::optional<MachineState> save_mid_run(const VmConfig& cfg, const std::string& marker) {
  auto a = Machine::create(cfg);
  EXPECT_TRUE(a) << a.error().message;
  if (!a) return std::nullopt;
  EXPECT_TRUE((*a)->start());
  bool reached = wait_for(**a, marker, 60s);
  EXPECT_TRUE(reached) << (*a)->devices().console_tail();
  EXPECT_TRUE((*a)->pause());
  auto state = (*a)->save_state();
  EXPECT_TRUE(state) << state.error().message;
  std::string before = (*a)->devices().console_tail();
  EXPECT_EQ(before.find("PASS"), std::string::npos) << "guest finished before the save";
  (*a)->request_stop(0, "state moved to the second VM");
  (*a)->wait_stopped();
  if (!reached || !state) return std::nullopt;
  return std::move(*state);
}

class StateRoundTrip : public ::testing::TestWithParam<uint32_t> {};

TEST_P(StateRoundTrip, SelfcheckPassesAfterRestoreIntoASecondVm) {
  GODWIT_REQUIRE_KVM();
  const uint32_t vcpus = GetParam();
  VmConfig cfg = selfcheck_config(vcpus, 25);
  // Mid-run: every vCPU has finished a couple of rounds.
  auto state = save_mid_run(cfg, "cpu" + std::to_string(vcpus - 1) + " round 2 ok");
  ASSERT_TRUE(state);

  auto b = Machine::create(cfg, BootMode::skip);
  ASSERT_TRUE(b) << b.error().message;
  auto restored = (*b)->restore_state(*state);
  ASSERT_TRUE(restored) << restored.error().message;
  ASSERT_TRUE((*b)->start());
  int status = wait_stopped_or_kill(**b, 180s);
  std::string after = (*b)->devices().console_tail();
  EXPECT_EQ(status, 0) << after;
  EXPECT_NE(after.find("PASS"), std::string::npos) << after;
  EXPECT_EQ(after.find("FAIL"), std::string::npos) << after;
}

INSTANTIATE_TEST_SUITE_P(Vcpus, StateRoundTrip, ::testing::Values(1u, 2u, 4u));

TEST(StateRoundTrip, RefusesAMismatchedVm) {
  GODWIT_REQUIRE_KVM();
  auto a = Machine::create(selfcheck_config(2, 1), BootMode::skip);
  ASSERT_TRUE(a);
  auto state = (*a)->save_state();
  ASSERT_TRUE(state) << state.error().message;
  auto b = Machine::create(selfcheck_config(1, 1), BootMode::skip);
  ASSERT_TRUE(b);
  auto r = (*b)->restore_state(*state);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("vCPUs"), std::string::npos) << r.error().message;
}

TEST(StateRoundTrip, VirtioDevicesComeBackActiveAndTheGuestPasses) {
  GODWIT_REQUIRE_KVM();
  test::TempFile disk("roundtrip-disk.img", std::string(64 * 1024, '\0'));
  VmConfig cfg = selfcheck_config(2, 25);
  cfg.disks.push_back(DiskConfig{.path = disk.path(), .serial = "rt"});
  cfg.rng = true;
  auto state = save_mid_run(cfg, "cpu1 round 2 ok");
  ASSERT_TRUE(state);
  ASSERT_EQ(state->virtio.size(), 2u);
  for (const auto& t : state->virtio) EXPECT_TRUE(t.device_active);

  auto b = Machine::create(cfg, BootMode::skip);
  ASSERT_TRUE(b) << b.error().message;
  auto restored = (*b)->restore_state(*state);
  ASSERT_TRUE(restored) << restored.error().message;
  nlohmann::json virtio = (*b)->info()["virtio"];
  ASSERT_EQ(virtio.size(), 2u);
  for (const auto& d : virtio) EXPECT_TRUE(d["active"].get<bool>()) << d.dump();
  ASSERT_TRUE((*b)->start());
  int status = wait_stopped_or_kill(**b, 180s);
  std::string after = (*b)->devices().console_tail();
  EXPECT_EQ(status, 0) << after;
  EXPECT_NE(after.find("PASS"), std::string::npos) << after;
}

TEST(StateRoundTrip, RefusesADifferentDeviceList) {
  GODWIT_REQUIRE_KVM();
  VmConfig with_rng = selfcheck_config(1, 1);
  with_rng.rng = true;
  auto a = Machine::create(with_rng, BootMode::skip);
  ASSERT_TRUE(a) << a.error().message;
  auto state = (*a)->save_state();
  ASSERT_TRUE(state) << state.error().message;
  auto b = Machine::create(selfcheck_config(1, 1), BootMode::skip);
  ASSERT_TRUE(b);
  auto r = (*b)->restore_state(*state);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("virtio devices"), std::string::npos) << r.error().message;
}

TEST(MachineRunState, TransitionsAreChecked) {
  GODWIT_REQUIRE_KVM();
  auto m = Machine::create(selfcheck_config(1, 100));
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)->state(), RunState::created);
  EXPECT_FALSE((*m)->pause());
  EXPECT_FALSE((*m)->resume());
  ASSERT_TRUE((*m)->start());
  EXPECT_FALSE((*m)->start());
  EXPECT_FALSE((*m)->save_state()) << "saving a running VM must be refused";
  ASSERT_TRUE((*m)->pause());
  EXPECT_EQ((*m)->state(), RunState::paused);
  ASSERT_TRUE((*m)->resume());
  (*m)->request_stop(5, "test");
  EXPECT_EQ((*m)->wait_stopped(), 5);
  EXPECT_EQ((*m)->state(), RunState::shutdown);
  EXPECT_EQ((*m)->stop_reason(), "test");
}

}  // namespace
}  // namespace godwit
