// Where console output goes: the UART and the testdev console register write
// bytes into a SerialSink (stdout, a file, a unix socket, a tee keeping the
// tail in memory). Injected into devices so they are testable without I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace godwit {

/// A byte sink for guest console output. Implementations are thread-safe:
/// several devices (on several vCPU threads) may write at once.
class SerialSink {
 public:
  virtual ~SerialSink() = default;
  /// Consumes `bytes`; must not block for long (a vCPU is waiting).
  virtual void write(std::span<const uint8_t> bytes) = 0;
};

/// Feeds host input into a device (usually Serial::enqueue_input); returns how
/// many bytes were accepted, fewer when the device's input FIFO is full.
using SerialInputHandler = std::function<size_t(std::span<const uint8_t>)>;

}  // namespace godwit
