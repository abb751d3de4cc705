// virtio-blk request processing (see block.h): the chain framing (header,
// data, status byte), one handler per request type, and the mapping of
// backend failures to VIRTIO_BLK_S_IOERR. Guest data moves with preadv /
// pwritev on host views of the chain's buffers; bytes read into guest memory
// are marked in the VMM dirty bitmap right after the read returns.
#include "devices/virtio/block.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/log.h"
#include "devices/virtio/serve_queue.h"

namespace godwit::virtio {

using namespace blk;

namespace {

/// Name of a request type in log messages.
const char* request_name(uint32_t type) {
  switch (type) {
    case kRequestIn:
      return "read";
    case kRequestOut:
      return "write";
    case kRequestFlush:
      return "flush";
    case kRequestGetId:
      return "get-id";
    case kRequestDiscard:
      return "discard";
    case kRequestWriteZeroes:
      return "write-zeroes";
    default:
      return "request";
  }
}

/// The GET_ID answer: the serial, or the image's file name, cut to 20 bytes.
std::array<uint8_t, kIdBytes> make_serial(const BlockOptions& options) {
  std::string id = options.serial;
  if (id.empty()) {
    id = options.path.substr(options.path.find_last_of('/') + 1);
  }
  std::array<uint8_t, kIdBytes> out{};
  std::memcpy(out.data(), id.data(), std::min(id.size(), kIdBytes));
  return out;
}

}  // namespace

Result<std::unique_ptr<VirtioBlock>> VirtioBlock::open(GuestMemory& memory, std::string name,
                                                       const BlockOptions& options) {
  if (options.serial.size() > kIdBytes) {
    return fail(name + ": serial '" + options.serial + "' is " +
                std::to_string(options.serial.size()) + " bytes; virtio-blk ids hold at most 20");
  }
  auto disk = BlockDisk::open(options.path, options.readonly, options.direct);
  if (!disk) return fail(disk.error().context(name));
  return std::unique_ptr<VirtioBlock>(new VirtioBlock(
      memory, std::move(name), options, std::make_unique<BlockDisk>(std::move(*disk))));
}

VirtioBlock::VirtioBlock(GuestMemory& memory, std::string name, BlockOptions options,
                         std::unique_ptr<BlockDisk> disk)
    : memory_(memory),
      name_(std::move(name)),
      options_(std::move(options)),
      disk_(std::move(disk)),
      serial_(make_serial(options_)) {
  offered_features_ = kFeatureSegMax | kFeatureBlockSize | kFeatureFlush;
  if (disk_->readonly()) {
    offered_features_ |= kFeatureReadOnly;
  } else {
    offered_features_ |= kFeatureWriteZeroes;
    if (disk_->can_punch_hole()) offered_features_ |= kFeatureDiscard;
  }
  config_.capacity = disk_->size() >> kSectorShift;
  config_.seg_max = kBlockSegMax;
  config_.blk_size = kSectorSize;
  if (offered_features_ & kFeatureDiscard) {
    config_.max_discard_sectors = kBlockMaxRangeSectors;
    config_.max_discard_seg = kBlockMaxRangeSegments;
    config_.discard_sector_alignment =
        std::max<uint32_t>(disk_->allocation_unit() >> kSectorShift, 1);
  }
  if (offered_features_ & kFeatureWriteZeroes) {
    config_.max_write_zeroes_sectors = kBlockMaxRangeSectors;
    config_.max_write_zeroes_seg = kBlockMaxRangeSegments;
    config_.write_zeroes_may_unmap = disk_->can_punch_hole() ? 1 : 0;
  }
}

VirtioBlock::~VirtioBlock() = default;

uint64_t VirtioBlock::capacity_bytes() const { return disk_->size(); }

void VirtioBlock::read_config(uint64_t offset, std::span<uint8_t> data) const {
  std::memset(data.data(), 0, data.size());
  if (offset >= sizeof(config_)) return;
  size_t n = std::min<uint64_t>(data.size(), sizeof(config_) - offset);
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config_) + offset, n);
}

void VirtioBlock::write_config(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {}

Result<void> VirtioBlock::activate(uint64_t /*negotiated_features*/, std::span<Queue> queues,
                                   VirtioInterrupt& interrupt) {
  if (queues.size() != 1) {
    return fail(name_ + ": activate with " + std::to_string(queues.size()) + " queues, want 1");
  }
  queue_ = &queues[0];
  interrupt_ = &interrupt;
  return {};
}

void VirtioBlock::reset() {
  queue_ = nullptr;
  interrupt_ = nullptr;
}

Result<void> VirtioBlock::process_queue(uint16_t index) {
  if (index != 0 || !queue_ || !queue_->ready()) return {};
  return serve_available_chains(
      *queue_, *interrupt_, [this](const DescriptorChain& chain) { return serve_chain(chain); });
}

Result<uint32_t> VirtioBlock::serve_chain(const DescriptorChain& chain) {
  // Without a status byte or a whole header the driver cannot be told
  // anything: a device error, as the spec leaves no other way.
  if (chain.writable_bytes == 0) {
    return fail(queue_->name() + ": request at head " + std::to_string(chain.head) +
                " has no writable status byte");
  }
  if (chain.readable_bytes < sizeof(RequestHeader)) {
    return fail(queue_->name() + ": request at head " + std::to_string(chain.head) + " has a " +
                std::to_string(chain.readable_bytes) + "-byte header; virtio-blk needs 16");
  }
  ChainReader reader(memory_, chain);
  auto header = TRY(reader.read_obj<RequestHeader>());
  Completion done = execute(header, chain);

  const GuestBuffer& last = chain.writable.back();
  TRY_VOID(memory_.write_obj(last.gpa + last.len - 1, done.status));  // marks dirty
  ++counters_.requests;
  if (done.status == kStatusIoErr) ++counters_.io_errors;
  if (done.status == kStatusUnsupported) ++counters_.unsupported;
  return done.data_written + 1;
}

VirtioBlock::Completion VirtioBlock::execute(const RequestHeader& header,
                                             const DescriptorChain& chain) {
  switch (header.type) {
    case kRequestIn:
      return read_sectors(header.sector, chain);
    case kRequestOut:
      return write_sectors(header.sector, chain);
    case kRequestFlush: {
      if (auto r = disk_->flush(); !r) return backend_error(header.type, r.error());
      ++counters_.flushes;
      return {kStatusOk, 0};
    }
    case kRequestGetId:
      return get_id(chain);
    case kRequestDiscard:
    case kRequestWriteZeroes:
      return discard_or_zero(header.type, chain);
    default:
      log::debug(name_ + ": unsupported request type " + std::to_string(header.type));
      return {kStatusUnsupported, 0};
  }
}

bool VirtioBlock::range_ok(uint64_t sector, uint64_t bytes) const {
  const uint64_t capacity = config_.capacity;
  if (bytes % kSectorSize != 0) return false;
  return sector <= capacity && (bytes >> kSectorShift) <= capacity - sector;
}

Result<void> VirtioBlock::guest_iovecs(std::span<const GuestBuffer> buffers, uint64_t skip,
                                       uint64_t len) {
  iov_scratch_.clear();
  for (const GuestBuffer& b : buffers) {
    if (len == 0) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    uint64_t piece = std::min<uint64_t>(b.len - skip, len);
    auto span = TRY(memory_.host_span(b.gpa + skip, piece));
    iov_scratch_.push_back(iovec{span.data(), span.size()});
    len -= piece;
    skip = 0;
  }
  return {};
}

void VirtioBlock::mark_dirty(std::span<const GuestBuffer> buffers, uint64_t skip, uint64_t len) {
  for (const GuestBuffer& b : buffers) {
    if (len == 0) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    uint64_t piece = std::min<uint64_t>(b.len - skip, len);
    memory_.mark_dirty(b.gpa + skip, piece);
    len -= piece;
    skip = 0;
  }
}

VirtioBlock::Completion VirtioBlock::read_sectors(uint64_t sector, const DescriptorChain& chain) {
  const uint64_t len = chain.writable_bytes - 1;  // the last byte is the status
  if (!range_ok(sector, len)) {
    log::debug(name_ + ": read of " + std::to_string(len) + " bytes at sector " +
               std::to_string(sector) + " outside the disk or not whole sectors");
    return {kStatusIoErr, 0};
  }
  if (auto r = guest_iovecs(chain.writable, 0, len); !r) {
    return backend_error(kRequestIn, r.error());
  }
  auto r = disk_->read(sector << kSectorShift, iov_scratch_);
  // Mark after the read returns (a failed read may have written part of it).
  mark_dirty(chain.writable, 0, len);
  if (!r) return backend_error(kRequestIn, r.error());
  counters_.read_bytes += len;
  return {kStatusOk, static_cast<uint32_t>(len)};
}

VirtioBlock::Completion VirtioBlock::write_sectors(uint64_t sector, const DescriptorChain& chain) {
  const uint64_t len = chain.readable_bytes - sizeof(RequestHeader);
  if (disk_->readonly()) {
    log::debug(name_ + ": write to a read-only disk refused");
    return {kStatusIoErr, 0};
  }
  if (!range_ok(sector, len)) {
    log::debug(name_ + ": write of " + std::to_string(len) + " bytes at sector " +
               std::to_string(sector) + " outside the disk or not whole sectors");
    return {kStatusIoErr, 0};
  }
  if (auto r = guest_iovecs(chain.readable, sizeof(RequestHeader), len); !r) {
    return backend_error(kRequestOut, r.error());
  }
  if (auto r = disk_->write(sector << kSectorShift, iov_scratch_); !r) {
    return backend_error(kRequestOut, r.error());
  }
  counters_.write_bytes += len;
  return {kStatusOk, 0};
}

VirtioBlock::Completion VirtioBlock::get_id(const DescriptorChain& chain) {
  const uint64_t room = std::min<uint64_t>(chain.writable_bytes - 1, kIdBytes);
  ChainWriter writer(memory_, chain);
  if (auto r = writer.write(std::span(serial_).first(room)); !r) {
    return backend_error(kRequestGetId, r.error());
  }
  return {kStatusOk, static_cast<uint32_t>(room)};
}

VirtioBlock::Completion VirtioBlock::discard_or_zero(uint32_t type, const DescriptorChain& chain) {
  const bool discard = type == kRequestDiscard;
  if (!(offered_features_ & (discard ? kFeatureDiscard : kFeatureWriteZeroes))) {
    return {disk_->readonly() ? kStatusIoErr : kStatusUnsupported, 0};
  }
  const uint64_t len = chain.readable_bytes - sizeof(RequestHeader);
  if (len == 0 || len % sizeof(RangeSegment) != 0) return {kStatusIoErr, 0};
  if (len / sizeof(RangeSegment) > kBlockMaxRangeSegments) return {kStatusUnsupported, 0};

  // Validate every range before touching the disk.
  std::array<RangeSegment, kBlockMaxRangeSegments> segments;
  const size_t count = len / sizeof(RangeSegment);
  ChainReader reader(memory_, chain);
  (void)reader.skip(sizeof(RequestHeader));  // readable_bytes >= 16 was checked
  for (size_t i = 0; i < count; ++i) {
    auto seg = reader.read_obj<RangeSegment>();
    if (!seg) return backend_error(type, seg.error());
    const uint32_t allowed = discard ? 0 : kSegmentFlagUnmap;
    if (seg->flags & ~allowed) return {kStatusUnsupported, 0};
    if (seg->num_sectors > kBlockMaxRangeSectors ||
        !range_ok(seg->sector, uint64_t{seg->num_sectors} << kSectorShift)) {
      return {kStatusIoErr, 0};
    }
    segments[i] = *seg;
  }
  for (size_t i = 0; i < count; ++i) {
    const uint64_t offset = segments[i].sector << kSectorShift;
    const uint64_t bytes = uint64_t{segments[i].num_sectors} << kSectorShift;
    if (bytes == 0) continue;
    const bool unmap =
        discard || ((segments[i].flags & kSegmentFlagUnmap) && config_.write_zeroes_may_unmap != 0);
    auto r = unmap ? disk_->punch_hole(offset, bytes) : disk_->write_zeroes(offset, bytes);
    if (!r) return backend_error(type, r.error());
  }
  ++(discard ? counters_.discards : counters_.write_zeroes);
  return {kStatusOk, 0};
}

VirtioBlock::Completion VirtioBlock::backend_error(uint32_t type, const Error& error) {
  // One warning per request type: a failing disk would otherwise flood the log.
  const uint32_t bit = 1u << (type % 32);
  if (!(logged_error_types_ & bit)) {
    logged_error_types_ |= bit;
    log::warn(name_ + ": " + request_name(type) +
              " failed, guest gets VIRTIO_BLK_S_IOERR: " + error.message + " (further " +
              request_name(type) + " errors are only counted in io_errors)");
  }
  return {kStatusIoErr, 0};
}

std::vector<std::pair<std::string, uint64_t>> VirtioBlock::counters() const {
  return {{"requests", counters_.requests},       {"read_bytes", counters_.read_bytes},
          {"write_bytes", counters_.write_bytes}, {"flushes", counters_.flushes},
          {"discards", counters_.discards},       {"write_zeroes", counters_.write_zeroes},
          {"io_errors", counters_.io_errors},     {"unsupported", counters_.unsupported}};
}

std::vector<std::pair<std::string, std::string>> VirtioBlock::properties() const {
  const auto* id = reinterpret_cast<const char*>(serial_.data());
  return {{"path", options_.path},
          {"readonly", disk_->readonly() ? "true" : "false"},
          {"direct", disk_->direct() ? "true" : "false"},
          {"serial", std::string(id, strnlen(id, kIdBytes))},
          {"capacity_bytes", std::to_string(disk_->size())}};
}

Result<DeviceState> VirtioBlock::state() const {
  DeviceState s{kDeviceIdBlock, std::vector<uint8_t>(kBlockStateBytes)};
  const uint32_t version = 1;
  std::memcpy(s.data.data(), &version, 4);
  std::memcpy(s.data.data() + 8, &config_.capacity, 8);
  std::memcpy(s.data.data() + 16, &offered_features_, 8);
  return s;
}

Result<void> VirtioBlock::restore(const DeviceState& state) {
  if (state.device_id != kDeviceIdBlock || state.data.size() != kBlockStateBytes) {
    return fail(name_ + ": restore of device id " + std::to_string(state.device_id) + " with " +
                std::to_string(state.data.size()) + " bytes; want id 2 with " +
                std::to_string(kBlockStateBytes));
  }
  uint32_t version = 0;
  uint64_t capacity = 0, features = 0;
  std::memcpy(&version, state.data.data(), 4);
  std::memcpy(&capacity, state.data.data() + 8, 8);
  std::memcpy(&features, state.data.data() + 16, 8);
  if (version != 1) {
    return fail(name_ + ": restore of block state version " + std::to_string(version) + "; want 1");
  }
  if (capacity != config_.capacity) {
    return fail(name_ + ": saved disk has " + std::to_string(capacity) + " sectors, " +
                options_.path + " has " + std::to_string(config_.capacity));
  }
  if (uint64_t missing = features & ~offered_features_) {
    char hex[24];
    std::snprintf(hex, sizeof hex, "%#llx", static_cast<unsigned long long>(missing));
    return fail(name_ + ": the saved device offered features " + hex + " that " + options_.path +
                " cannot offer (read-only mode or hole punching differs)");
  }
  if ((features ^ offered_features_) & kFeatureReadOnly) {
    return fail(name_ + ": saved disk was " +
                ((features & kFeatureReadOnly) ? "read-only" : "writable") + ", " + options_.path +
                " is not");
  }
  return {};
}

}  // namespace godwit::virtio
