// PlatformDevices: creates the legacy devices, maps them on the buses and
// connects the console backend.
#include "vmm/platform_devices.h"

#include <cinttypes>
#include <mutex>
#include <set>

#include "base/log.h"
#include "devices/debug_exit.h"
#include "devices/i8042.h"
#include "devices/serial_backends.h"
#include "devices/testdev.h"
#include "vmm/platform.h"

namespace godwit {

/// Keeps the console tail (for error reports and tests) in front of the backend.
class ConsoleTail : public TeeSink {
 public:
  using TeeSink::TeeSink;
};

/// Owns whatever threads and sockets the chosen --serial backend needs.
class ConsoleBackend {
 public:
  std::shared_ptr<SerialSink> sink;  // null for --serial none
  std::unique_ptr<UnixSocketConsole> socket;
  std::unique_ptr<FdInputReader> stdin_reader;

  ~ConsoleBackend() {
    if (stdin_reader) stdin_reader->stop();
    if (socket) socket->stop();
  }
};

namespace {

constexpr size_t kConsoleTailBytes = 64 * 1024;

/// Drives one GSI of the in-kernel irqchip.
class KvmIrqLine : public IrqLine {
 public:
  KvmIrqLine(std::function<void(uint32_t, bool)> line, uint32_t gsi)
      : line_(std::move(line)), gsi_(gsi) {}
  void set_level(bool high) override { line_(gsi_, high); }

 private:
  std::function<void(uint32_t, bool)> line_;
  uint32_t gsi_;
};

Result<std::unique_ptr<ConsoleBackend>> make_backend(const SerialConfig& serial) {
  auto backend = std::make_unique<ConsoleBackend>();
  switch (serial.kind) {
    case SerialConfig::Kind::stdout_:
      backend->sink = std::make_shared<StdoutSink>();
      break;
    case SerialConfig::Kind::file: {
      auto file = FileSink::open(serial.path, FileSinkMode::truncate);
      if (!file) return fail(file.error().context("--serial file"));
      backend->sink = std::shared_ptr<SerialSink>(std::move(*file));
      break;
    }
    case SerialConfig::Kind::unix_socket: {
      auto sock = UnixSocketConsole::listen(serial.path);
      if (!sock) return fail(sock.error().context("--serial unix"));
      backend->socket = std::move(*sock);
      // The socket is owned by the backend; the sink must not delete it.
      backend->sink = std::shared_ptr<SerialSink>(backend->socket.get(), [](SerialSink*) {});
      break;
    }
    case SerialConfig::Kind::none:
      break;
  }
  return backend;
}

}  // namespace

PlatformDevices::~PlatformDevices() = default;

Result<std::unique_ptr<PlatformDevices>> PlatformDevices::create(const VmConfig& config,
                                                                 Hooks hooks) {
  std::unique_ptr<PlatformDevices> d(new PlatformDevices());
  d->hooks_ = std::move(hooks);
  d->backend_ = TRY(make_backend(config.serial));
  d->tail_ = std::make_shared<ConsoleTail>(d->backend_->sink, kConsoleTailBytes);

  auto stop = d->hooks_.stop;
  d->serial_ = std::make_shared<Serial>(
      std::make_shared<KvmIrqLine>(d->hooks_.irq_line, platform::kSerialIrq), d->tail_);
  TRY_VOID(d->pio_.insert(d->serial_, platform::kSerialPort, platform::kSerialPortLen, "serial"));
  // One i8042 device covers 0x60-0x64; it decodes the two ports itself.
  auto i8042 = std::make_shared<I8042>(
      [stop] { stop(0, "guest reset the machine through the i8042 (treated as power-off)"); });
  TRY_VOID(d->pio_.insert(i8042, platform::kI8042DataPort,
                          platform::kI8042CommandPort - platform::kI8042DataPort + 1, "i8042"));
  auto exit_dev = std::make_shared<DebugExit>([stop](int code) {
    stop(code, "guest wrote " + std::to_string(code) + " to the debug-exit port");
  });
  TRY_VOID(d->pio_.insert(exit_dev, platform::kDebugExitPort, 1, "debug-exit"));

  TestdevConfig tcfg;
  tcfg.vcpu_count = config.vcpus;
  tcfg.ram_mib = static_cast<uint32_t>(config.memory_size / kMiB);
  auto testdev = std::make_shared<Testdev>(tcfg, d->tail_, [stop](int code) {
    stop(code, "guest wrote " + std::to_string(code) + " to the testdev exit register");
  });
  TRY_VOID(d->mmio_.insert(testdev, platform::kTestdevBase, platform::kTestdevSize, "testdev"));

  SerialInputHandler input = [serial = d->serial_](std::span<const uint8_t> bytes) {
    return serial->enqueue_input(bytes);
  };
  if (d->backend_->socket) {
    d->backend_->socket->start(input);
  } else if (config.serial.kind == SerialConfig::Kind::stdout_ && !stdin_is_dev_null()) {
    auto reader = FdInputReader::start(0, input);
    if (!reader) return fail(reader.error().context("serial input from stdin"));
    d->backend_->stdin_reader = std::move(*reader);
  }
  return d;
}

void PlatformDevices::note_unmapped(const char* bus, uint64_t addr) {
  // Logged once per address: a guest probing hardware would flood the log.
  static std::mutex mu;
  static std::set<std::pair<std::string, uint64_t>> seen;
  std::lock_guard lock(mu);
  if (!seen.insert({bus, addr}).second) return;
  char buf[96];
  std::snprintf(buf, sizeof buf, "guest accessed unmapped %s address 0x%" PRIx64, bus, addr);
  log::debug(buf);
}

void PlatformDevices::pio_in(uint16_t port, std::span<uint8_t> data) {
  if (pio_.read(port, data) == BusStatus::no_device) note_unmapped("port", port);
}
void PlatformDevices::pio_out(uint16_t port, std::span<const uint8_t> data) {
  if (pio_.write(port, data) == BusStatus::no_device) note_unmapped("port", port);
}
void PlatformDevices::mmio_read(uint64_t addr, std::span<uint8_t> data) {
  if (mmio_.read(addr, data) == BusStatus::no_device) note_unmapped("MMIO", addr);
}
void PlatformDevices::mmio_write(uint64_t addr, std::span<const uint8_t> data) {
  if (mmio_.write(addr, data) == BusStatus::no_device) note_unmapped("MMIO", addr);
}

PlatformDevicesState PlatformDevices::save_state() const { return {serial_->state()}; }

Result<void> PlatformDevices::restore_state(const PlatformDevicesState& state) {
  serial_->restore(state.serial);
  return {};
}

nlohmann::json PlatformDevices::info() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [bus_name, bus] : {std::pair{"pio", &pio_}, std::pair{"mmio", &mmio_}}) {
    for (const BusRange& r : bus->ranges())
      list.push_back({{"name", r.name}, {"bus", bus_name}, {"base", r.base}, {"size", r.len}});
  }
  return list;
}

std::string PlatformDevices::console_tail() const { return tail_->tail(); }

}  // namespace godwit
