// godwit-multifd-codec-bench: the multifd packet layer (issue 6) alone.
//  1. zstd per core: one thread compresses 64 MiB in 128-page (512 KiB)
//     packets with one ZstdCompressor, then decompresses the frames with one
//     ZstdDecompressor; MB/s of raw page bytes, best of three passes, and the
//     compression ratio (raw / compressed), at levels 1 and 3, for
//       zeros  (what zero-page detection would normally skip),
//       random (incompressible: PacketSender sends these raw),
//       mixed  (the files under /usr/bin and /usr/lib/x86_64-linux-gnu,
//               concatenated: executables, libraries, data; a stand-in for
//               guest RAM full of programs and page cache).
//  2. one channel: a PacketSender thread and a PacketReceiver thread over
//     loopback TCP, 128-page packets, the receiver copying each page to its
//     place in a destination buffer (as the engine writes guest RAM).
// Both threads of (2) share the host's cores, so the figure is a lower bound
// of what one channel does between two hosts. Prints one JSON document;
// asserts nothing. Argument: bytes per data set (default 64 MiB).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_data.h"
#include "migration/multifd_packet.h"
#include "migration/transport.h"

namespace {

using namespace godwit;
using namespace godwit::migration;
using namespace godwit::migration::multifd;
using Clock = std::chrono::steady_clock;
using Bytes = std::vector<uint8_t>;

constexpr size_t kPagesPerPacket = 128;
constexpr size_t kPacketBytes = kPagesPerPacket * kPageSize;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double mb_per_s(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0;
}

struct DataSet {
  std::string name;
  Bytes bytes;
};

/// Compress then decompress `data` in packets at `level`; best of three.
nlohmann::json codec_run(const DataSet& set, int level) {
  ZstdCompressor compressor(level);
  ZstdDecompressor decompressor;
  const size_t packets = set.bytes.size() / kPacketBytes;
  const uint64_t raw = packets * kPacketBytes;
  std::vector<Bytes> frames(packets);
  double best_compress = 1e30, best_decompress = 1e30;
  uint64_t compressed = 0, incompressible = 0;
  Bytes out(kPacketBytes);
  for (int pass = 0; pass < 3; ++pass) {
    compressed = 0;
    incompressible = 0;
    double compress_seconds = 0;
    for (size_t i = 0; i < packets; ++i) {
      // Only the compress call is timed: keeping the frame for the
      // decompression pass is the bench's need, not the sender's.
      const auto t0 = Clock::now();
      auto frame =
          compressor.compress(std::span(set.bytes).subspan(i * kPacketBytes, kPacketBytes));
      compress_seconds += seconds_since(t0);
      if (!frame) return {{"error", frame.error().message}};
      frames[i].assign(frame->begin(), frame->end());
      compressed += frame->size();
      if (frame->size() >= kPacketBytes) ++incompressible;
    }
    best_compress = std::min(best_compress, compress_seconds);
    const auto t0 = Clock::now();
    for (size_t i = 0; i < packets; ++i) {
      if (auto ok = decompressor.decompress(frames[i], out); !ok)
        return {{"error", ok.error().message}};
    }
    best_decompress = std::min(best_decompress, seconds_since(t0));
  }
  return {
      {"data", set.name},
      {"level", level},
      {"raw_bytes", raw},
      {"compressed_bytes", compressed},
      {"ratio", compressed > 0 ? static_cast<double>(raw) / static_cast<double>(compressed) : 0.0},
      {"packets_not_smaller_than_raw", incompressible},
      {"packets", packets},
      {"compress_mb_per_s", mb_per_s(raw, best_compress)},
      {"decompress_mb_per_s", mb_per_s(raw, best_decompress)},
  };
}

/// One channel over loopback TCP: `data` as 128-page packets, then a sync.
nlohmann::json channel_run(const DataSet& set, Compression compression) {
  nlohmann::json out = {{"data", set.name}, {"compression", to_string(compression)}};
  auto listener = Listener::listen(*parse_address("tcp:127.0.0.1:0"));
  if (!listener) {
    out["error"] = listener.error().message;
    return out;
  }
  Result<Connection> accepted = fail("not accepted");
  std::thread acceptor([&] { accepted = listener->accept(std::chrono::seconds(10)); });
  auto connected = connect_to(listener->bound(), std::chrono::seconds(10));
  acceptor.join();
  if (!connected || !accepted) {
    out["error"] = !connected ? connected.error().message : accepted.error().message;
    return out;
  }

  const size_t packets = set.bytes.size() / kPacketBytes;
  std::vector<uint64_t> gpas(packets * kPagesPerPacket);
  for (size_t i = 0; i < gpas.size(); ++i) gpas[i] = i * kPageSize;
  Bytes destination(set.bytes.size());
  std::fill(destination.begin(), destination.end(), 0xEE);  // fault it in before timing

  PacketSender sender(*connected, compression);
  PacketReceiver receiver(*accepted, compression.codec);
  Result<void> send_result, receive_result;
  const auto t0 = Clock::now();
  std::thread send_thread([&] {
    send_result = [&]() -> Result<void> {
      for (size_t i = 0; i < packets; ++i) {
        TRY_VOID(sender.send_pages(0, std::span(gpas).subspan(i * kPagesPerPacket, kPagesPerPacket),
                                   std::span(set.bytes).subspan(i * kPacketBytes, kPacketBytes),
                                   {}));
      }
      return sender.send_sync(0);
    }();
    if (!send_result) connected->shutdown();
  });
  receive_result = [&]() -> Result<void> {
    for (;;) {
      auto packet = TRY(receiver.read());
      if (packet.sync()) return {};
      for (size_t p = 0; p < packet.data_gpas.size(); ++p)
        std::memcpy(destination.data() + packet.data_gpas[p], packet.data.data() + p * kPageSize,
                    kPageSize);
    }
  }();
  const double wall = seconds_since(t0);
  if (!receive_result) accepted->shutdown();
  send_thread.join();
  if (!send_result) out["error"] = send_result.error().message;
  if (!receive_result) out["error"] = receive_result.error().message;
  out["packets"] = sender.packets();
  out["raw_bytes"] = sender.raw_bytes();
  out["wire_bytes"] = sender.bytes_sent();
  out["ratio"] = static_cast<double>(sender.raw_bytes()) / static_cast<double>(sender.bytes_sent());
  out["seconds"] = wall;
  out["raw_mb_per_s"] = mb_per_s(sender.raw_bytes(), wall);
  out["wire_mb_per_s"] = mb_per_s(sender.bytes_sent(), wall);
  out["identical"] = std::equal(destination.begin(), destination.end(), set.bytes.begin());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  size_t size = 64ull << 20;
  if (argc > 1) size = std::stoull(argv[1]);
  size = size / kPacketBytes * kPacketBytes;
  std::fprintf(stderr, "multifd codec bench: reading the data sets ...\n");
  std::vector<DataSet> sets;
  sets.push_back({"zeros", Bytes(size, 0)});
  sets.push_back({"random", bench::random_bytes(size)});
  sets.push_back({"mixed", bench::system_file_bytes(size)});

  nlohmann::json codec = nlohmann::json::array();
  for (const DataSet& set : sets) {
    for (int level : {1, 3}) {
      std::fprintf(stderr, "multifd codec bench: zstd:%d %s ...\n", level, set.name.c_str());
      codec.push_back(codec_run(set, level));
      std::fprintf(stderr, "%s\n", codec.back().dump().c_str());
    }
  }
  nlohmann::json channel = nlohmann::json::array();
  const std::vector<std::pair<size_t, Compression>> channel_runs = {
      {2, {Codec::none, 1}}, {2, {Codec::zstd, 1}}, {2, {Codec::zstd, 3}},
      {1, {Codec::zstd, 1}}, {0, {Codec::zstd, 1}},
  };
  for (const auto& [set, compression] : channel_runs) {
    std::fprintf(stderr, "multifd codec bench: channel %s %s ...\n", to_string(compression).c_str(),
                 sets[set].name.c_str());
    channel.push_back(channel_run(sets[set], compression));
    std::fprintf(stderr, "%s\n", channel.back().dump().c_str());
  }
  nlohmann::json doc = {
      {"benchmark", "multifd-codec"},
      {"note",
       "codec: one thread, 128-page packets, best of 3 passes, MB/s of raw page bytes (1 MB = "
       "1e6 B); channel: sender and receiver threads in one process over loopback TCP, sharing "
       "the host's cores"},
      {"bytes_per_data_set",
       {{"zeros", sets[0].bytes.size()},
        {"random", sets[1].bytes.size()},
        {"mixed", sets[2].bytes.size()}}},
      {"hardware_threads", std::thread::hardware_concurrency()},
      {"codec", codec},
      {"channel", channel},
  };
  std::cout << doc.dump(2) << std::endl;
  return 0;
}
