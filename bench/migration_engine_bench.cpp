// godwit-migration-engine-bench: the migration engine alone, without KVM.
// A MigrationSource and a MigrationDestination in one process over loopback
// TCP, with the fake VMs of the engine tests (tests/migration_fake_vm.h):
// guest RAM is real memfd memory and the "guest" is a dirtier thread. So the
// figures cover the engine's own cost (dirty harvest of the VMM bitmap, page
// scan, framing, checksums, the socket, loading in place, the switchover
// handshake), not KVM's dirty log or a real guest's write rate. Scenarios
// shaped like the S1-S3:
//   s1-engine: 1 GiB RAM, 900 MiB written once, then idle;
//   s2-engine: 100 MiB rewritten by the dirtier at full speed, 300 ms limit;
//   s3-engine: 512 MiB rewritten by the dirtier at full speed.
// Multifd (issue 6), S1's shape with 1, 2 and 4 channels, without and with
// zstd (level 1), on three kinds of written memory:
//   s1-mfd-<data>-c<N>-<codec>:   1 GiB RAM, 900 MiB written once;
//   s1x4-mfd-<data>-c<N>-<codec>: 4 GiB RAM, 3.6 GiB written once;
// <data>: zeros (pages written with zeros: read and found zero, never sent),
// random (incompressible), mixed (the bytes of /usr/bin and
// /usr/lib/x86_64-linux-gnu files, repeated: realistic, compressible).
// Arguments: scenario names or name prefixes to run (default: all). Prints
// one JSON document; asserts nothing.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "base/log.h"
#include "bench/bench_data.h"
#include "migration_fake_vm.h"

namespace {

using namespace godwit;
using namespace godwit::migration;
using fake::Clock;

/// Calls `write(page)` for each page of the first `bytes` of guest RAM, in
/// address order across regions (RAM above 3 GiB continues above 4 GiB).
template <typename F>
void for_each_page(GuestMemory& memory, uint64_t bytes, F&& write) {
  uint64_t left = bytes / 4096;
  for (const MemoryRegion& region : memory.regions()) {
    for (uint64_t off = 0; off < region.size && left > 0; off += 4096, --left) {
      write(region.host + off);
    }
  }
}

/// Fills `bytes` of RAM with data that neither compresses to nothing nor is
/// zero: a per-page xorshift stream.
void fill(GuestMemory& memory, uint64_t bytes) {
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for_each_page(memory, bytes, [&](uint8_t* page) {
    for (size_t i = 0; i < 512; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::memcpy(page + i * 8, &x, 8);
    }
  });
}

/// Writes zeros into `bytes` of RAM (allocated pages, unlike holes).
void fill_zeros(GuestMemory& memory, uint64_t bytes) {
  for_each_page(memory, bytes, [](uint8_t* page) { std::memset(page, 0, 4096); });
}

/// Fills `bytes` of RAM with copies of `source` (the system binaries).
void fill_mixed(GuestMemory& memory, uint64_t bytes, const std::vector<uint8_t>& source) {
  if (source.empty()) return;
  uint64_t from = 0;
  for_each_page(memory, bytes, [&](uint8_t* page) {
    for (size_t done = 0; done < 4096;) {
      const size_t n = std::min<uint64_t>(4096 - done, source.size() - from);
      std::memcpy(page + done, source.data() + from, n);
      done += n;
      from = (from + n) % source.size();
    }
  });
}

enum class Data { random, zeros, mixed };

const char* data_name(Data d) {
  switch (d) {
    case Data::random:
      return "random";
    case Data::zeros:
      return "zeros";
    case Data::mixed:
      return "mixed";
  }
  return "?";
}

struct Scenario {
  std::string name;
  bool auto_converge;
  uint64_t ram_bytes;
  uint64_t written_once_bytes;  ///< filled before the migration, then idle
  uint64_t dirty_pages;         ///< rewritten by the dirtier while it runs
  uint32_t downtime_limit_ms;
  uint32_t channels = 0;
  Compression compression;
  Data data = Data::random;
};

nlohmann::json run(const Scenario& s) {
  // An idle guest still runs: it rewrites one page every 100 ms.
  fake::FakeSource source(s.ram_bytes, s.dirty_pages == 0 ? 1 : s.dirty_pages);
  source.guest.pace_us = s.dirty_pages == 0 ? 100'000 : 0;
  switch (s.data) {
    case Data::random:
      fill(*source.memory, s.written_once_bytes);
      break;
    case Data::zeros:
      fill_zeros(*source.memory, s.written_once_bytes);
      break;
    case Data::mixed:
      fill_mixed(*source.memory, s.written_once_bytes, bench::system_file_bytes(256ull << 20));
      break;
  }
  fake::FakeDestination dest(s.ram_bytes);

  MigrationDestination incoming(dest);
  auto bound = incoming.listen(*parse_address("tcp:127.0.0.1:0"));
  if (!bound) return {{"name", s.name}, {"error", bound.error().message}};
  Result<void> dest_result;
  std::thread dest_thread([&] { dest_result = incoming.run(); });

  MigrationSource engine(source);
  SendOptions options;
  options.uri = bound->text();
  options.downtime_limit_ms = s.downtime_limit_ms;
  options.auto_converge = s.auto_converge;
  options.channels = s.channels;
  options.compression = s.compression;
  const auto t0 = Clock::now();
  nlohmann::json out = {{"name", s.name}};
  if (auto started = engine.start(options); !started) {
    incoming.abort();
    dest_thread.join();
    out["error"] = started.error().message;
    return out;
  }
  // A scenario that does not converge is cancelled after a minute.
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (!finished && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!finished) (void)engine.cancel();
  });
  const MigrationStatus status = engine.wait();
  finished = true;
  watchdog.join();
  const double wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  dest_thread.join();

  out["state"] = std::string(to_string(status.state));
  if (!status.error.empty()) out["error"] = status.error;
  out["ram_bytes"] = s.ram_bytes;
  out["written_once_bytes"] = s.written_once_bytes;
  out["data"] = data_name(s.data);
  out["channels"] = s.channels;
  out["compression"] = to_string(s.compression);
  out["multifd_bytes"] = status.multifd_bytes;
  out["uncompressed_bytes"] = status.uncompressed_bytes;
  // Guest bytes moved per second of the whole migration (what the user
  // waits for), next to the bytes on the wire.
  out["guest_bytes_per_s"] =
      wall_ms > 0 ? static_cast<double>(s.written_once_bytes) / (wall_ms / 1000.0) : 0.0;
  out["dirtier_bytes"] = s.dirty_pages * 4096;
  out["downtime_limit_ms"] = s.downtime_limit_ms;
  out["total_time_ms"] = status.total_time_ms;
  out["wall_time_ms"] = wall_ms;
  out["setup_time_ms"] = status.setup_time_ms;
  out["downtime_reported_ms"] = status.downtime_ms;
  if (status.state == MigrationState::completed) {
    // What the "guest" saw: its last write on the source to its start on the
    // destination.
    out["downtime_guest_seen_ms"] =
        std::chrono::duration<double, std::milli>(dest.start_time - source.stop_time).count();
  }
  out["downtime_breakdown_ms"] = {
      {"final_sync", status.downtime.final_sync_us / 1000.0},
      {"last_ram", status.downtime.last_ram_us / 1000.0},
      {"device_state", status.downtime.device_state_us / 1000.0},
      {"destination_load", status.downtime.destination_load_us / 1000.0},
      {"resume", status.downtime.resume_us / 1000.0},
  };
  out["transferred_bytes"] = status.transferred_bytes;
  out["normal_pages"] = status.normal_pages;
  out["zero_pages"] = status.zero_pages;
  out["throughput_bytes_per_s_last_window"] = status.throughput_bytes_per_s;
  out["average_bytes_per_s"] =
      wall_ms > 0 ? static_cast<double>(status.transferred_bytes) / (wall_ms / 1000.0) : 0.0;
  out["iterations"] = status.iterations;
  out["auto_converge"] = s.auto_converge;
  out["throttle_percent_at_end"] = status.throttle_percent;
  out["dirtier_passes"] = source.guest.passes();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // Optional arguments: names of the scenarios to run (default: all).
  std::vector<std::string> only(argv + 1, argv + argc);
  godwit::log::set_level(godwit::log::Level::warn);
  std::vector<Scenario> scenarios = {
      {"s1-engine", false, 1ull << 30, 900ull << 20, 0, 300, 0, {}, Data::random},
      {"s2-engine", false, 256ull << 20, 0, (100ull << 20) / 4096, 300, 0, {}, Data::random},
      {"s3-engine", false, 1ull << 30, 0, (512ull << 20) / 4096, 300, 0, {}, Data::random},
      {"s3-engine-auto-converge",
       true,
       1ull << 30,
       0,
       (512ull << 20) / 4096,
       300,
       0,
       {},
       Data::random},
  };
  for (const uint64_t scale : {1, 4}) {
    for (const Data data : {Data::zeros, Data::random, Data::mixed}) {
      for (const uint32_t channels : {1u, 2u, 4u}) {
        for (const Codec codec : {Codec::none, Codec::zstd}) {
          Scenario s{std::string(scale == 1 ? "s1" : "s1x4") + "-mfd-" + data_name(data) + "-c" +
                         std::to_string(channels) + "-" + (codec == Codec::zstd ? "zstd" : "none"),
                     false,
                     scale << 30,
                     scale * (900ull << 20),
                     0,
                     300,
                     channels,
                     {codec, 1},
                     data};
          scenarios.push_back(s);
        }
      }
    }
  }
  const auto wanted = [&](const std::string& name) {
    return only.empty() || std::ranges::any_of(only, [&](const std::string& prefix) {
             return name.starts_with(prefix);
           });
  };
  nlohmann::json results = nlohmann::json::array();
  for (const Scenario& s : scenarios) {
    if (!wanted(s.name)) continue;
    std::fprintf(stderr, "migration engine bench: %s ...\n", s.name.c_str());
    results.push_back(run(s));
    std::fprintf(stderr, "%s\n", results.back().dump().c_str());
  }
  nlohmann::json doc = {
      {"benchmark", "migration-engine"},
      {"note",
       "engine only, without KVM: fake VMs in one process over loopback TCP "
       "(tests/migration_fake_vm.h); not the VM scenarios S1-S3"},
      {"scenarios", results},
  };
  std::cout << doc.dump(2) << std::endl;
  return 0;
}
