// virtio-blk device (issue 3, item 4), driven as a driver would through a
// real Queue in guest memory, against image files checked from the host
// side: read / write round trips, exact dirty-page marking of reads, data
// split over several buffers, flush, get-id, discard and write-zeroes,
// out-of-range and read-only refusals, backend failures mapped to IOERR,
// unknown types, malformed chains (device error, device still usable),
// config layout, counters, properties and state.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/block.h"
#include "tests/test_util.h"
#include "tests/unit/virtio_test_driver.h"

namespace godwit::virtio {
namespace {

using namespace blk;
using test::ChainPart;

constexpr uint64_t kImageBytes = 1024 * 1024;  // 2048 sectors

/// The byte every fresh image holds at `offset`.
uint8_t pattern(uint64_t offset) { return static_cast<uint8_t>(offset * 131 + offset / 4093 + 1); }

/// Creates an image file of `size` bytes filled with pattern(); returns its path.
std::string make_image(uint64_t size, const std::string& name = "virtio-blk-XXXXXX") {
  std::string path = ::godwit::test::build_path(name);
  int fd = ::mkstemp(path.data());
  EXPECT_GE(fd, 0) << path << ": " << std::strerror(errno);
  std::vector<uint8_t> data(size);
  for (uint64_t i = 0; i < size; ++i) data[i] = pattern(i);
  EXPECT_EQ(::pwrite(fd, data.data(), size, 0), static_cast<ssize_t>(size));
  ::close(fd);
  return path;
}

/// `len` bytes of the file at `offset`, read from the host side.
std::vector<uint8_t> file_bytes(const std::string& path, uint64_t offset, uint64_t len) {
  std::vector<uint8_t> out(len);
  int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_EQ(::pread(fd, out.data(), len, static_cast<off_t>(offset)), static_cast<ssize_t>(len));
  ::close(fd);
  return out;
}

/// The fresh-image bytes of [offset, offset + len).
std::vector<uint8_t> expected_pattern(uint64_t offset, uint64_t len) {
  std::vector<uint8_t> out(len);
  for (uint64_t i = 0; i < len; ++i) out[i] = pattern(offset + i);
  return out;
}

/// One request as submitted: its head and where its data and status live.
struct Submitted {
  uint16_t head = 0;
  uint64_t data = 0;
  uint64_t status = 0;
};

class VirtioBlockTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(memory_, nullptr); }
  void TearDown() override {
    for (const auto& p : images_) ::unlink(p.c_str());
  }

  /// A new image (tracked for removal).
  std::string image(uint64_t size = kImageBytes) { return images_.emplace_back(make_image(size)); }

  /// Opens the device on `options` and activates it on a fresh queue.
  void start(BlockOptions options) {
    auto dev = VirtioBlock::open(*memory_, "blk0", options);
    ASSERT_TRUE(dev.has_value()) << dev.error().message;
    device_ = std::move(*dev);
    queues_.clear();
    queues_.emplace_back(*memory_, "blk0 q0", kBlockQueueSize);
    driver_.setup(queues_[0], kFeatureVersion1 | device_->offered_features());
    ASSERT_TRUE(device_->activate(kFeatureVersion1, queues_, irq_).has_value());
  }
  /// Opens a fresh writable image.
  void start_default() {
    path_ = image();
    start({.path = path_});
  }

  /// Header buffer for a request.
  uint64_t header(uint32_t type, uint64_t sector) {
    uint64_t gpa = driver_.alloc(16);
    driver_.poke_obj(gpa, RequestHeader{type, 0, sector});
    return gpa;
  }
  /// Status buffer preset to 0xff (so "untouched" is visible).
  uint64_t status_byte() {
    uint64_t gpa = driver_.alloc(1);
    driver_.poke_obj<uint8_t>(gpa, 0xff);
    return gpa;
  }
  /// Publishes header | data (readable, `out`) | status.
  Submitted submit_out(uint32_t type, uint64_t sector, const std::vector<uint8_t>& out) {
    Submitted s;
    uint64_t hdr = header(type, sector);
    s.data = driver_.alloc(out.size());
    driver_.poke(s.data, out.data(), out.size());
    s.status = status_byte();
    s.head = driver_.add_chain({{hdr, 16, false},
                                {s.data, static_cast<uint32_t>(out.size()), false},
                                {s.status, 1, true}});
    driver_.publish(s.head);
    return s;
  }
  /// Publishes header | data (writable, `in_len` bytes, absent when 0) | status.
  Submitted submit_in(uint32_t type, uint64_t sector, uint32_t in_len) {
    Submitted s;
    uint64_t hdr = header(type, sector);
    s.data = in_len ? driver_.alloc(in_len) : 0;
    s.status = status_byte();
    s.head =
        in_len ? driver_.add_chain({{hdr, 16, false}, {s.data, in_len, true}, {s.status, 1, true}})
               : driver_.add_chain({{hdr, 16, false}, {s.status, 1, true}});
    driver_.publish(s.head);
    return s;
  }
  /// Publishes a DISCARD / WRITE_ZEROES request carrying `segments`.
  Submitted submit_ranges(uint32_t type, const std::vector<RangeSegment>& segments) {
    std::vector<uint8_t> out(segments.size() * sizeof(RangeSegment));
    std::memcpy(out.data(), segments.data(), out.size());
    return submit_out(type, 0, out);
  }
  /// Runs the queue, expecting success.
  void run() {
    auto r = device_->process_queue(0);
    ASSERT_TRUE(r.has_value()) << r.error().message;
  }
  uint8_t status(const Submitted& s) { return driver_.peek_obj<uint8_t>(s.status); }
  std::vector<uint8_t> guest(uint64_t gpa, uint64_t len) {
    auto b = driver_.bytes(gpa, len);
    return {b.begin(), b.end()};
  }
  uint64_t counter(const std::string& name) {
    for (const auto& [k, v] : device_->counters()) {
      if (k == name) return v;
    }
    ADD_FAILURE() << "no counter " << name;
    return 0;
  }

  std::unique_ptr<GuestMemory> memory_ = ::godwit::test::make_guest_memory(4 * kMiB);
  std::vector<std::string> images_;
  std::string path_;
  std::unique_ptr<VirtioBlock> device_;
  std::vector<Queue> queues_;
  test::CountingInterrupt irq_;
  test::TestDriver driver_{*memory_, 128};
};

// R4: config space is struct virtio_blk_config; features follow the disk.
TEST_F(VirtioBlockTest, ConfigLayoutAndFeatures) {
  start_default();
  auto cfg = [&](uint64_t off, size_t n) {
    uint64_t v = 0;
    device_->read_config(off, std::span(reinterpret_cast<uint8_t*>(&v), n));
    return v;
  };
  EXPECT_EQ(cfg(0x00, 8), kImageBytes / 512) << "capacity in sectors";
  EXPECT_EQ(cfg(0x0c, 4), kBlockSegMax);
  EXPECT_EQ(cfg(0x14, 4), 512u) << "blk_size";
  EXPECT_EQ(cfg(0x30, 4), kBlockMaxRangeSectors) << "max_write_zeroes_sectors";
  EXPECT_EQ(cfg(0x34, 4), kBlockMaxRangeSegments) << "max_write_zeroes_seg";
  EXPECT_EQ(cfg(0x100, 4), 0u) << "beyond the config";
  uint64_t f = device_->offered_features();
  EXPECT_TRUE(f & kFeatureFlush);
  EXPECT_TRUE(f & kFeatureSegMax);
  EXPECT_TRUE(f & kFeatureBlockSize);
  EXPECT_TRUE(f & kFeatureWriteZeroes);
  EXPECT_FALSE(f & kFeatureReadOnly);
  // Discard is offered exactly when this file system punches holes.
  int fd = ::open(path_.c_str(), O_RDWR);
  bool punches =
      ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kImageBytes, 4096) == 0;
  ::close(fd);
  EXPECT_EQ((f & kFeatureDiscard) != 0, punches);
  if (punches) {
    EXPECT_EQ(cfg(0x24, 4), kBlockMaxRangeSectors) << "max_discard_sectors";
    EXPECT_EQ(cfg(0x28, 4), kBlockMaxRangeSegments) << "max_discard_seg";
    EXPECT_GE(cfg(0x2c, 4), 1u) << "discard_sector_alignment";
    EXPECT_EQ(cfg(0x38, 1), 1u) << "write_zeroes_may_unmap";
  }
  EXPECT_EQ(device_->device_id(), 2u);
  EXPECT_EQ(device_->queue_max_sizes(), std::vector<uint16_t>{kBlockQueueSize});
}

// R4: a read returns the file's bytes and marks exactly the written pages.
TEST_F(VirtioBlockTest, ReadReturnsFileBytesAndMarksExactlyTheWrittenPages) {
  start_default();
  const uint64_t data = 0x80000 - 256;  // 1024 bytes over pages 0x7f and 0x80
  uint64_t hdr = header(kRequestIn, 5);
  uint64_t st = status_byte();
  uint16_t head = driver_.add_chain({{hdr, 16, false}, {data, 1024, true}, {st, 1, true}});
  driver_.publish(head);
  DirtyBitmap& dirty = memory_->vmm_dirty(0);
  dirty.clear();
  run();
  EXPECT_EQ(driver_.peek_obj<uint8_t>(st), kStatusOk);
  EXPECT_EQ(guest(data, 1024), expected_pattern(5 * 512, 1024));
  EXPECT_EQ(driver_.used_entry(0), std::make_pair(uint32_t{head}, 1025u));
  EXPECT_EQ(irq_.used, 1);
  EXPECT_TRUE(dirty.test(0x7f));
  EXPECT_TRUE(dirty.test(0x80));
  EXPECT_TRUE(dirty.test(st / kPageSize)) << "status byte";
  EXPECT_TRUE(dirty.test(test::TestDriver::kUsedGpa / kPageSize)) << "used ring";
  EXPECT_EQ(dirty.count(), 4u) << "a page was marked that the device did not write";
  EXPECT_EQ(counter("read_bytes"), 1024u);
  EXPECT_EQ(counter("requests"), 1u);
}

// R4: a write lands in the file; reading it back returns it.
TEST_F(VirtioBlockTest, WriteRoundTrip) {
  start_default();
  std::vector<uint8_t> out(1536);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i ^ 0x5a);
  auto w = submit_out(kRequestOut, 100, out);
  run();
  EXPECT_EQ(status(w), kStatusOk);
  EXPECT_EQ(driver_.used_entry(0).second, 1u) << "a write places only the status";
  EXPECT_EQ(file_bytes(path_, 100 * 512, out.size()), out);
  EXPECT_EQ(file_bytes(path_, 99 * 512, 512), expected_pattern(99 * 512, 512)) << "neighbour";
  auto r = submit_in(kRequestIn, 100, 1536);
  run();
  EXPECT_EQ(status(r), kStatusOk);
  EXPECT_EQ(guest(r.data, 1536), out);
  EXPECT_EQ(counter("write_bytes"), 1536u);
}

// R4: data split over several buffers; header and data sharing one buffer;
// status sharing the last data buffer.
TEST_F(VirtioBlockTest, DataSplitOverSeveralBuffers) {
  start_default();
  uint64_t hdr = header(kRequestIn, 7);
  uint64_t a = driver_.alloc(100), b = driver_.alloc(900), c = driver_.alloc(1049);
  uint16_t head = driver_.add_chain(
      {{hdr, 16, false}, {a, 100, true}, {b, 900, true}, {c, 1049, true}});  // 2048 + status
  driver_.publish(head);
  run();
  std::vector<uint8_t> got = guest(a, 100);
  auto more = guest(b, 900);
  got.insert(got.end(), more.begin(), more.end());
  more = guest(c, 1048);
  got.insert(got.end(), more.begin(), more.end());
  EXPECT_EQ(got, expected_pattern(7 * 512, 2048));
  EXPECT_EQ(driver_.peek_obj<uint8_t>(c + 1048), kStatusOk);

  // Header + first 496 data bytes in one buffer, the rest in another.
  std::vector<uint8_t> out(16 + 1024);
  RequestHeader h{kRequestOut, 0, 40};
  std::memcpy(out.data(), &h, 16);
  for (size_t i = 16; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i * 3);
  uint64_t p = driver_.alloc(512), q = driver_.alloc(528);
  driver_.poke(p, out.data(), 512);
  driver_.poke(q, out.data() + 512, 528);
  uint64_t st = status_byte();
  driver_.publish(driver_.add_chain({{p, 512, false}, {q, 528, false}, {st, 1, true}}));
  run();
  EXPECT_EQ(driver_.peek_obj<uint8_t>(st), kStatusOk);
  EXPECT_EQ(file_bytes(path_, 40 * 512, 1024), std::vector<uint8_t>(out.begin() + 16, out.end()));
}

// R4: flush succeeds and is counted; get-id answers the serial, NUL-padded.
TEST_F(VirtioBlockTest, FlushAndGetId) {
  path_ = image();
  start({.path = path_, .serial = "godwit-disk-7"});
  auto f = submit_in(kRequestFlush, 0, 0);
  auto id = submit_in(kRequestGetId, 0, 20);
  run();
  EXPECT_EQ(status(f), kStatusOk);
  EXPECT_EQ(status(id), kStatusOk);
  std::vector<uint8_t> want(20, 0);
  std::memcpy(want.data(), "godwit-disk-7", 13);
  EXPECT_EQ(guest(id.data, 20), want);
  EXPECT_EQ(driver_.used_entry(1).second, 21u);
  EXPECT_EQ(counter("flushes"), 1u);
}

// R4: without a serial the id is the image's file name (first 20 bytes); a
// serial longer than 20 bytes is refused at open.
TEST_F(VirtioBlockTest, IdFromFileNameAndLongSerialRefused) {
  path_ = images_.emplace_back(make_image(4096, "blk-id-name-XXXXXX"));
  start({.path = path_});
  std::string base = path_.substr(path_.rfind('/') + 1);
  auto props = device_->properties();
  EXPECT_EQ(props[3], std::make_pair(std::string("serial"), base));
  auto bad = VirtioBlock::open(*memory_, "blk1", {.path = path_, .serial = std::string(21, 's')});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("20"), std::string::npos) << bad.error().message;
}

// R4: discard and write-zeroes (with and without UNMAP) leave zeroes; the
// neighbours keep their bytes; several ranges in one request.
TEST_F(VirtioBlockTest, DiscardAndWriteZeroesLeaveZeroes) {
  start_default();
  const std::vector<uint8_t> zero4k(4096, 0);
  if (device_->offered_features() & kFeatureDiscard) {
    auto d = submit_ranges(kRequestDiscard, {{16, 8, 0}, {40, 8, 0}});
    run();
    EXPECT_EQ(status(d), kStatusOk);
    EXPECT_EQ(file_bytes(path_, 16 * 512, 4096), zero4k);
    EXPECT_EQ(file_bytes(path_, 40 * 512, 4096), zero4k);
    EXPECT_EQ(file_bytes(path_, 24 * 512, 512), expected_pattern(24 * 512, 512));
    EXPECT_EQ(counter("discards"), 1u);
  }
  auto z = submit_ranges(kRequestWriteZeroes, {{3, 2, 0}});                    // unaligned
  auto zu = submit_ranges(kRequestWriteZeroes, {{64, 8, kSegmentFlagUnmap}});  // may punch
  run();
  EXPECT_EQ(status(z), kStatusOk);
  EXPECT_EQ(status(zu), kStatusOk);
  EXPECT_EQ(file_bytes(path_, 3 * 512, 1024), std::vector<uint8_t>(1024, 0));
  EXPECT_EQ(file_bytes(path_, 2 * 512, 512), expected_pattern(2 * 512, 512));
  EXPECT_EQ(file_bytes(path_, 5 * 512, 512), expected_pattern(5 * 512, 512));
  EXPECT_EQ(file_bytes(path_, 64 * 512, 4096), zero4k);
  EXPECT_EQ(counter("write_zeroes"), 2u);
}

// R4: range requests the spec refuses: UNMAP on discard and unknown flags
// (UNSUPP), too many segments (UNSUPP), ranges past the end (IOERR), a
// payload that is not whole segments (IOERR). The disk is untouched.
TEST_F(VirtioBlockTest, BadRangeRequestsAreRefused) {
  start_default();
  std::vector<Submitted> unsupp, ioerr;
  if (device_->offered_features() & kFeatureDiscard) {
    unsupp.push_back(submit_ranges(kRequestDiscard, {{0, 8, kSegmentFlagUnmap}}));
  }
  unsupp.push_back(submit_ranges(kRequestWriteZeroes, {{0, 8, 4}}));
  unsupp.push_back(submit_ranges(kRequestWriteZeroes,
                                 std::vector<RangeSegment>(kBlockMaxRangeSegments + 1, {0, 1, 0})));
  ioerr.push_back(submit_ranges(kRequestWriteZeroes, {{kImageBytes / 512 - 1, 2, 0}}));
  ioerr.push_back(submit_ranges(kRequestWriteZeroes, {{0, 1, 0}, {~0ull - 1, 4, 0}}));
  ioerr.push_back(submit_out(kRequestWriteZeroes, 0, std::vector<uint8_t>(20, 0)));
  run();
  for (const auto& s : unsupp) EXPECT_EQ(status(s), kStatusUnsupported) << "head " << s.head;
  for (const auto& s : ioerr) EXPECT_EQ(status(s), kStatusIoErr) << "head " << s.head;
  EXPECT_EQ(file_bytes(path_, 0, 8192), expected_pattern(0, 8192));
  EXPECT_EQ(counter("io_errors"), ioerr.size());
  EXPECT_EQ(counter("unsupported"), unsupp.size());
}

// R4: sector ranges past the capacity (also overflowing ones) and partial
// sectors are IOERR; the last sector itself is fine.
TEST_F(VirtioBlockTest, OutOfRangeIsIoError) {
  start_default();
  const uint64_t last = kImageBytes / 512 - 1;
  auto ok = submit_in(kRequestIn, last, 512);
  auto past = submit_in(kRequestIn, last, 1024);
  auto huge = submit_in(kRequestIn, ~0ull >> 9, 512);
  auto partial = submit_in(kRequestIn, 0, 100);
  auto write_past = submit_out(kRequestOut, last + 1, std::vector<uint8_t>(512, 1));
  run();
  EXPECT_EQ(status(ok), kStatusOk);
  EXPECT_EQ(guest(ok.data, 512), expected_pattern(last * 512, 512));
  EXPECT_EQ(status(past), kStatusIoErr);
  EXPECT_EQ(status(huge), kStatusIoErr);
  EXPECT_EQ(status(partial), kStatusIoErr);
  EXPECT_EQ(status(write_past), kStatusIoErr);
  EXPECT_EQ(driver_.used_entry(1).second, 1u) << "a failed read reports only the status";
  EXPECT_EQ(counter("io_errors"), 4u);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kImageBytes) << "the file grew";
}

// R4: a read-only disk offers RO, refuses writes with IOERR and keeps its bytes.
TEST_F(VirtioBlockTest, ReadOnlyRefusesWrites) {
  path_ = image();
  start({.path = path_, .readonly = true});
  uint64_t f = device_->offered_features();
  EXPECT_TRUE(f & kFeatureReadOnly);
  EXPECT_FALSE(f & (kFeatureDiscard | kFeatureWriteZeroes));
  auto w = submit_out(kRequestOut, 0, std::vector<uint8_t>(512, 0xee));
  auto z = submit_ranges(kRequestWriteZeroes, {{0, 8, 0}});
  auto r = submit_in(kRequestIn, 0, 512);
  auto fl = submit_in(kRequestFlush, 0, 0);
  run();
  EXPECT_EQ(status(w), kStatusIoErr);
  EXPECT_EQ(status(z), kStatusIoErr);
  EXPECT_EQ(status(r), kStatusOk);
  EXPECT_EQ(status(fl), kStatusOk);
  EXPECT_EQ(file_bytes(path_, 0, 4096), expected_pattern(0, 4096));
  EXPECT_EQ(device_->properties()[1], std::make_pair(std::string("readonly"), std::string("true")));
}

// R4: the file shrinking behind the device makes reads short: IOERR, not a
// crash; the rest of the disk still reads.
TEST_F(VirtioBlockTest, ShortReadFromBackendIsIoError) {
  start_default();
  ASSERT_EQ(::truncate(path_.c_str(), kImageBytes / 2), 0);
  auto bad = submit_in(kRequestIn, kImageBytes / 512 - 8, 4096);
  auto good = submit_in(kRequestIn, 8, 4096);
  run();
  EXPECT_EQ(status(bad), kStatusIoErr);
  EXPECT_EQ(status(good), kStatusOk);
  EXPECT_EQ(guest(good.data, 4096), expected_pattern(8 * 512, 4096));
  EXPECT_EQ(counter("io_errors"), 1u);
}

// R4: a write the host refuses (file-size limit: EFBIG after a short write)
// is IOERR; the device keeps serving.
TEST_F(VirtioBlockTest, FailedBackendWriteIsIoError) {
  start_default();
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit limited = old;
  limited.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  auto bad = submit_out(kRequestOut, 64 * 1024 / 512 - 2, std::vector<uint8_t>(4096, 0xab));
  auto good = submit_out(kRequestOut, 0, std::vector<uint8_t>(512, 0xcd));
  auto r = device_->process_queue(0);
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(status(bad), kStatusIoErr);
  EXPECT_EQ(status(good), kStatusOk);
  EXPECT_EQ(file_bytes(path_, 0, 512), std::vector<uint8_t>(512, 0xcd));
  EXPECT_EQ(counter("io_errors"), 1u);
}

// R4: an unknown request type completes with UNSUPP.
TEST_F(VirtioBlockTest, UnknownTypeIsUnsupported) {
  start_default();
  auto u = submit_in(99, 0, 512);
  auto lifetime = submit_in(10, 0, 0);  // GET_LIFETIME: not offered
  run();
  EXPECT_EQ(status(u), kStatusUnsupported);
  EXPECT_EQ(status(lifetime), kStatusUnsupported);
  EXPECT_EQ(counter("unsupported"), 2u);
}

// R4: a chain without a status byte, or with a short header, is a device
// error after the earlier chains completed and were signalled; after a
// reset the device serves requests again.
TEST_F(VirtioBlockTest, MalformedChainsAreDeviceErrors) {
  start_default();
  auto first = submit_in(kRequestIn, 0, 512);
  uint64_t hdr = header(kRequestIn, 0);
  driver_.publish(driver_.add_chain({{hdr, 16, false}}));  // nothing writable
  auto r = device_->process_queue(0);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("no writable status byte"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("blk0 q0"), std::string::npos) << r.error().message;
  EXPECT_EQ(status(first), kStatusOk);
  EXPECT_EQ(driver_.used_idx(), 1);
  EXPECT_EQ(irq_.used, 1);

  // What the transport does on NEEDS_RESET followed by a driver re-init.
  device_->reset();
  queues_[0].reset();
  driver_.reset();
  driver_.setup(queues_[0]);
  ASSERT_TRUE(device_->activate(kFeatureVersion1, queues_, irq_).has_value());
  uint64_t short_hdr = driver_.alloc(8);
  uint64_t st = status_byte();
  driver_.publish(driver_.add_chain({{short_hdr, 8, false}, {st, 1, true}}));
  r = device_->process_queue(0);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("8-byte header"), std::string::npos) << r.error().message;

  device_->reset();
  queues_[0].reset();
  driver_.reset();
  driver_.setup(queues_[0]);
  ASSERT_TRUE(device_->activate(kFeatureVersion1, queues_, irq_).has_value());
  auto again = submit_in(kRequestIn, 1, 512);
  run();
  EXPECT_EQ(status(again), kStatusOk);
  EXPECT_EQ(guest(again.data, 512), expected_pattern(512, 512));
}

// R4: counters and properties list the documented names.
TEST_F(VirtioBlockTest, CountersAndProperties) {
  path_ = image();
  start({.path = path_, .serial = "s1"});
  submit_in(kRequestIn, 0, 1024);
  submit_out(kRequestOut, 0, std::vector<uint8_t>(512, 2));
  run();
  std::vector<std::string> names;
  for (const auto& [k, v] : device_->counters()) names.push_back(k);
  EXPECT_EQ(names,
            (std::vector<std::string>{"requests", "read_bytes", "write_bytes", "flushes",
                                      "discards", "write_zeroes", "io_errors", "unsupported"}));
  EXPECT_EQ(counter("requests"), 2u);
  EXPECT_EQ(counter("read_bytes"), 1024u);
  EXPECT_EQ(counter("write_bytes"), 512u);
  using P = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(device_->properties(), (P{{"path", path_},
                                      {"readonly", "false"},
                                      {"direct", "false"},
                                      {"serial", "s1"},
                                      {"capacity_bytes", std::to_string(kImageBytes)}}));
}

// R4: state carries capacity and features; restore checks both.
TEST_F(VirtioBlockTest, StateAndRestoreChecks) {
  start_default();
  DeviceState s = device_->state().value();
  EXPECT_EQ(s.device_id, kDeviceIdBlock);
  ASSERT_EQ(s.data.size(), kBlockStateBytes);
  uint64_t capacity = 0;
  std::memcpy(&capacity, s.data.data() + 8, 8);
  EXPECT_EQ(capacity, kImageBytes / 512);
  EXPECT_TRUE(device_->restore(s).has_value());

  auto smaller = VirtioBlock::open(*memory_, "blk1", {.path = image(kImageBytes / 2)}).value();
  auto r = smaller->restore(s);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("sectors"), std::string::npos) << r.error().message;

  auto ro = VirtioBlock::open(*memory_, "blk2", {.path = path_, .readonly = true}).value();
  EXPECT_FALSE(ro->restore(s).has_value()) << "writable state into a read-only disk";
  EXPECT_FALSE(device_->restore(ro->state().value()).has_value());
  EXPECT_FALSE(device_->restore(DeviceState{4, s.data}).has_value());
  EXPECT_FALSE(device_->restore(DeviceState{kDeviceIdBlock, {}}).has_value());
}

// R4: with direct=on (O_DIRECT), guest buffers at any address and sectors
// not aligned to the file system block go through the bounce buffer: reads
// and writes still match the file and reads still mark their pages dirty.
TEST_F(VirtioBlockTest, DirectDiskServesUnalignedBuffers) {
  path_ = image();
  auto probe = VirtioBlock::open(*memory_, "probe", {.path = path_, .direct = true});
  if (!probe) GTEST_SKIP() << "O_DIRECT unusable here: " << probe.error().message;
  start({.path = path_, .direct = true});
  EXPECT_EQ(device_->properties()[2], std::make_pair(std::string("direct"), std::string("true")));
  const uint64_t data = 0x90000 - 0x21;  // odd address over pages 0x8f and 0x90
  uint64_t hdr = header(kRequestIn, 3);
  uint64_t st = status_byte();
  driver_.publish(driver_.add_chain({{hdr, 16, false}, {data, 1536, true}, {st, 1, true}}));
  DirtyBitmap& dirty = memory_->vmm_dirty(0);
  dirty.clear();
  run();
  EXPECT_EQ(driver_.peek_obj<uint8_t>(st), kStatusOk);
  EXPECT_EQ(guest(data, 1536), expected_pattern(3 * 512, 1536));
  EXPECT_TRUE(dirty.test(0x8f));
  EXPECT_TRUE(dirty.test(0x90));

  std::vector<uint8_t> out(2560);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i * 7 + 3);
  auto w = submit_out(kRequestOut, 9, out);  // 4608..7168: straddles a 4 KiB block
  run();
  EXPECT_EQ(status(w), kStatusOk);
  EXPECT_EQ(file_bytes(path_, 9 * 512, out.size()), out);
  EXPECT_EQ(file_bytes(path_, 8 * 512, 512), expected_pattern(8 * 512, 512));
  EXPECT_EQ(file_bytes(path_, 14 * 512, 512), expected_pattern(14 * 512, 512));
  auto whole = submit_in(kRequestIn, 0, kImageBytes - 512);
  run();
  ASSERT_EQ(status(whole), kStatusOk);
  EXPECT_EQ(guest(whole.data + 9 * 512, out.size()), out);
  EXPECT_EQ(guest(whole.data, 4608), expected_pattern(0, 4608));
}

}  // namespace
}  // namespace godwit::virtio
