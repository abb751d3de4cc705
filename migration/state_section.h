// StateSection<T>: the Migratable of a piece of state that is one value of a
// codec'd type (a vCPU, the VM-wide KVM state, the UART, a virtio transport),
// reached through a getter and a setter. Such state is small and changes
// while the VM runs, so it moves entirely in stop-and-copy: no precopy data,
// pending() reports the encoded size as stopcopy_bytes, save_iterate() writes
// nothing, save_complete() writes the whole value, load() decodes and sets it.
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "migration/migratable.h"
#include "migration/state_codecs.h"

namespace godwit::migration {

/// Migratable adapter over a value of type T with a StateCodec.
template <typename T>
class StateSection final : public Migratable {
 public:
  /// Reads the current state (may fail, e.g. a KVM ioctl).
  using Getter = std::function<Result<T>()>;
  /// Installs a loaded state.
  using Setter = std::function<Result<void>(const T&)>;

  /// Section StateCodec<T>::kind[instance] over `get` / `set`.
  StateSection(uint32_t instance, Getter get, Setter set)
      : instance_(instance), get_(std::move(get)), set_(std::move(set)) {}

  [[nodiscard]] SectionKey key() const override {
    return {std::string(StateCodec<T>::kind), instance_};
  }
  [[nodiscard]] uint32_t version() const override { return StateCodec<T>::version; }
  [[nodiscard]] uint32_t min_version() const override { return StateCodec<T>::min_version; }

  /// Estimate: the size found by the last exact query (0 before one; no
  /// getter call, R12). Exact and final: reads and encodes the state.
  [[nodiscard]] Result<PendingData> pending(PendingQuery query) override {
    if (query != PendingQuery::estimate) {
      T state = TRY(get());
      last_size_ = encode_payload(state).size();
    }
    return PendingData{.stopcopy_bytes = last_size_};
  }
  /// Nothing of this state can move while the VM runs: done at once.
  [[nodiscard]] Result<bool> save_iterate(SectionWriter& /*out*/) override { return true; }
  /// Writes the whole state.
  [[nodiscard]] Result<void> save_complete(SectionWriter& out) override {
    T state = TRY(get());
    StateCodec<T>::encode(out, state);
    return out.status();
  }
  /// Decodes the whole payload (no bytes may be left) and installs it.
  [[nodiscard]] Result<void> load(SectionReader& in, uint32_t version) override {
    T state = TRY(decode_payload<T>(in, version));
    auto set = set_(state);
    if (!set) return fail(set.error().context(key().name() + ": load"));
    return {};
  }
  /// Nothing to arm: this state is loaded completely before the guest runs.
  [[nodiscard]] Result<void> postcopy_prepare() override { return {}; }
  /// Holds no resources.
  [[nodiscard]] Result<void> cleanup(bool /*success*/) override { return {}; }

 private:
  [[nodiscard]] Result<T> get() const {
    auto state = get_();
    if (!state) return fail(state.error().context(key().name() + ": save"));
    return state;
  }

  uint32_t instance_;
  Getter get_;
  Setter set_;
  uint64_t last_size_ = 0;
};

}  // namespace godwit::migration
