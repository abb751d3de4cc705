// libFuzzer target over the split virtqueue (issue 3): the input becomes a
// queue configuration plus the contents of a 64 KiB guest memory (descriptor
// table, avail ring, indirect tables, buffers). The target pops chains,
// reads and writes them, publishes used entries and asks for notification
// decisions, and traps when an invariant the device model relies on breaks:
//  - a failed pop leaves the queue broken, and later pops keep failing;
//  - every buffer of an accepted chain lies inside guest RAM, is non-empty,
//    readable buffers come first and the totals fit in 32 bits;
//  - every page the device wrote is marked in the VMM dirty bitmap.
//
// Input layout (little-endian), then guest memory from offset 0:
//   [0]    log2(queue size) (mod 9: sizes 1..256)
//   [1]    bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 restore() path
//   [2..3] last_avail_idx = next_used_idx    [4..5] desc table gpa
//   [6..7] avail ring gpa                    [8..9] used ring gpa
//   [10]   bytes written per chain (x 16)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "devices/virtio/queue.h"

namespace {

using namespace godwit;
using namespace godwit::virtio;

constexpr size_t kHeaderBytes = 11;
constexpr uint64_t kGuestBytes = 64 * 1024;
constexpr int kMaxPops = 64;
constexpr uint64_t kMaxCopy = 8192;  // bytes copied per chain and direction

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

GuestMemory& guest_memory() {
  static std::unique_ptr<GuestMemory> memory =
      GuestMemory::create({.size = kGuestBytes, .backing = MemoryBacking::anonymous}).value();
  return *memory;
}

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

bool in_ram(const GuestMemory& memory, const GuestBuffer& b) {
  const MemoryRegion* r = memory.find_region(b.gpa);
  return r != nullptr && r->contains(b.gpa, b.len);
}

void check_chain(const GuestMemory& memory, const DescriptorChain& chain, uint16_t size) {
  FUZZ_CHECK(chain.head < size);
  uint64_t readable = 0, writable = 0;
  for (const GuestBuffer& b : chain.readable) {
    FUZZ_CHECK(b.len > 0 && in_ram(memory, b));
    readable += b.len;
  }
  for (const GuestBuffer& b : chain.writable) {
    FUZZ_CHECK(b.len > 0 && in_ram(memory, b));
    writable += b.len;
  }
  FUZZ_CHECK(readable == chain.readable_bytes && writable == chain.writable_bytes);
  FUZZ_CHECK(readable + writable <= UINT32_MAX);
  FUZZ_CHECK(chain.descriptor_count <= uint32_t{size} + kMaxIndirectDescriptors);
}

/// Traps unless every page under chain bytes [from, to) of the writable
/// buffers is marked in the VMM dirty bitmap.
void check_marked(DirtyBitmap& dirty, const DescriptorChain& chain, uint64_t from, uint64_t to) {
  uint64_t at = 0;  // chain offset of the current buffer
  for (const GuestBuffer& b : chain.writable) {
    uint64_t lo = std::max(from, at), hi = std::min(to, at + b.len);
    if (lo < hi) {
      uint64_t first = b.gpa + (lo - at), last = b.gpa + (hi - at) - 1;
      for (uint64_t page = first / kPageSize; page <= last / kPageSize; ++page)
        FUZZ_CHECK(dirty.test(page));
    }
    at += b.len;
  }
}

/// Reads up to kMaxCopy bytes and skips the rest; writes `want` bytes, the
/// first half zero-copy (next_span + commit), the second half by copy, and
/// checks after each half that the bitmap covers exactly what was written.
uint32_t exercise_chain(GuestMemory& memory, const DescriptorChain& chain, uint64_t want) {
  ChainReader reader(memory, chain);
  std::vector<uint8_t> bytes(std::min<uint64_t>(reader.remaining(), kMaxCopy));
  FUZZ_CHECK(reader.read(bytes).has_value());
  FUZZ_CHECK(reader.skip(reader.remaining()).has_value());
  FUZZ_CHECK(!reader.read_obj<uint8_t>().has_value());

  DirtyBitmap& dirty = memory.vmm_dirty(0);
  ChainWriter writer(memory, chain);
  want = std::min<uint64_t>(want, writer.remaining());
  uint64_t half = want / 2;
  dirty.clear();
  while (writer.written() < half) {
    auto span = writer.next_span(half - writer.written());
    FUZZ_CHECK(span.has_value() && !span->empty());
    std::memset(span->data(), 0xa5, span->size());
    FUZZ_CHECK(writer.commit(span->size()).has_value());
  }
  check_marked(dirty, chain, 0, half);
  dirty.clear();
  std::vector<uint8_t> pattern(want - half, 0x5a);
  FUZZ_CHECK(writer.write(pattern).has_value());
  FUZZ_CHECK(writer.written() == want);
  check_marked(dirty, chain, half, want);
  return writer.written();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeaderBytes) return 0;
  GuestMemory& memory = guest_memory();
  std::span<uint8_t> ram = memory.host_span(0, kGuestBytes).value();
  std::memset(ram.data(), 0, ram.size());
  std::memcpy(ram.data(), data + kHeaderBytes, std::min<size_t>(size - kHeaderBytes, ram.size()));

  auto queue_size = static_cast<uint16_t>(1u << (data[0] % 9));
  uint64_t features =
      ((data[1] & 1) ? kFeatureEventIdx : 0) | ((data[1] & 2) ? kFeatureIndirectDesc : 0);
  uint16_t start_idx = le16(data + 2);
  Queue queue(memory, "fuzz", 256);
  if (data[1] & 4) {
    QueueState s;
    s.size = queue_size;
    s.ready = true;
    s.desc_table = le16(data + 4);
    s.avail_ring = le16(data + 6);
    s.used_ring = le16(data + 8);
    s.last_avail_idx = s.next_used_idx = s.signalled_used_idx = start_idx;
    s.event_idx = (features & kFeatureEventIdx) != 0;
    s.indirect = (features & kFeatureIndirectDesc) != 0;
    if (!queue.restore(s)) return 0;
  } else {
    queue.set_size(queue_size);
    queue.set_desc_table(le16(data + 4));
    queue.set_avail_ring(le16(data + 6));
    queue.set_used_ring(le16(data + 8));
    queue.set_features(features);
    if (!queue.activate()) return 0;
  }
  FUZZ_CHECK(queue.ready());
  uint64_t write_bytes = uint64_t{data[10]} * 16;

  for (int i = 0; i < kMaxPops; ++i) {
    auto popped = queue.pop();
    if (!popped) {
      FUZZ_CHECK(queue.broken() && !queue.broken_reason().empty());
      FUZZ_CHECK(!queue.pop().has_value() && !queue.available().has_value());
      break;
    }
    FUZZ_CHECK(!queue.broken());
    if (!popped->has_value()) break;
    const DescriptorChain& chain = **popped;
    check_chain(memory, chain, queue_size);
    uint32_t written = exercise_chain(memory, chain, write_bytes);
    uint16_t used_before = queue.state().next_used_idx;
    FUZZ_CHECK(queue.add_used(chain.head, written).has_value());
    FUZZ_CHECK(queue.state().next_used_idx == static_cast<uint16_t>(used_before + 1));
    FUZZ_CHECK(memory.read_obj<uint16_t>(queue.state().used_ring + 2).value() ==
               queue.state().next_used_idx);
    FUZZ_CHECK(queue.needs_notification().has_value());
    if (features & kFeatureEventIdx)
      FUZZ_CHECK(queue.set_avail_event().has_value());
    else
      FUZZ_CHECK(queue.set_no_notify((i & 1) != 0).has_value());
  }
  return 0;
}
