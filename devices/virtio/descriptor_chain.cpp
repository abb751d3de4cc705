// The validating descriptor-chain walk and the chain reader / writer. The
// guest owns the descriptor memory and may change it while we read it, so
// each descriptor is copied out once and only the copy is used.
#include "devices/virtio/descriptor_chain.h"

#include <algorithm>
#include <cstdio>

namespace godwit::virtio {
namespace {

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

/// Accumulates buffers while enforcing the per-buffer rules (4, 5, 6).
class ChainBuilder {
 public:
  ChainBuilder(const GuestMemory& memory, std::string prefix, uint16_t head)
      : memory_(memory), prefix_(std::move(prefix)) {
    chain_.head = head;
  }

  /// `where` names the descriptor ("descriptor 3", "indirect descriptor 2").
  [[nodiscard]] Result<void> add(const std::string& where, const Descriptor& d) {
    bool writable = (d.flags & kDescFlagWrite) != 0;
    if (!writable && seen_writable_)
      return fail(prefix_ + where +
                  " is device-readable but follows a device-writable "
                  "descriptor (readable descriptors must come first)");
    if (writable) seen_writable_ = true;
    total_ += d.len;
    if (total_ > UINT32_MAX)
      return fail(prefix_ + where + ": total chain length " + std::to_string(total_) +
                  " overflows 32 bits");
    if (d.len == 0) return {};
    if (d.addr > UINT64_MAX - d.len)
      return fail(prefix_ + where + " addr " + hex(d.addr) + " len " + std::to_string(d.len) +
                  " wraps around the address space");
    const MemoryRegion* region = memory_.find_region(d.addr);
    if (region == nullptr || !region->contains(d.addr, d.len))
      return fail(prefix_ + where + " addr " + hex(d.addr) + " len " + std::to_string(d.len) +
                  " is outside guest RAM");
    GuestBuffer buffer{d.addr, d.len};
    if (writable) {
      chain_.writable.push_back(buffer);
      chain_.writable_bytes += d.len;
    } else {
      chain_.readable.push_back(buffer);
      chain_.readable_bytes += d.len;
    }
    return {};
  }

  void count_descriptor() { ++chain_.descriptor_count; }
  DescriptorChain take() { return std::move(chain_); }

 private:
  const GuestMemory& memory_;
  std::string prefix_;
  DescriptorChain chain_;
  bool seen_writable_ = false;
  uint64_t total_ = 0;
};

}  // namespace

Result<DescriptorChain> walk_descriptor_chain(const GuestMemory& memory,
                                              const DescriptorTable& table, uint16_t head) {
  std::string prefix = "virtqueue " + table.name + " chain head " + std::to_string(head) + ": ";
  if (head >= table.size)
    return fail(prefix + "head index " + std::to_string(head) + " >= queue size " +
                std::to_string(table.size));

  ChainBuilder builder(memory, prefix, head);
  uint64_t table_gpa = table.gpa;
  uint32_t table_len = table.size;  // descriptors in the table being walked
  bool in_indirect = false;
  uint32_t walked = 0;  // descriptors walked in the current table
  uint32_t index = head;
  for (;;) {
    std::string where =
        (in_indirect ? "indirect descriptor " : "descriptor ") + std::to_string(index);
    if (++walked > table_len)
      return fail(prefix + "chain is longer than its " +
                  (in_indirect ? "indirect table (" : "queue (size ") + std::to_string(table_len) +
                  (in_indirect ? " descriptors)" : ")") + " at " + where +
                  ": a loop or an oversized chain");
    Result<Descriptor> loaded = memory.read_obj<Descriptor>(table_gpa + 16ull * index);
    if (!loaded) return fail(loaded.error().context(prefix + "reading " + where));
    const Descriptor d = *loaded;
    builder.count_descriptor();

    if (d.flags & kDescFlagIndirect) {
      if (!table.indirect)
        return fail(prefix + where + " is INDIRECT but VIRTIO_F_INDIRECT_DESC was not negotiated");
      if (in_indirect) return fail(prefix + where + " is a nested INDIRECT descriptor");
      if (d.flags & kDescFlagNext) return fail(prefix + where + " has both INDIRECT and NEXT set");
      if (d.len == 0 || d.len % sizeof(Descriptor) != 0)
        return fail(prefix + where + " indirect table length " + std::to_string(d.len) +
                    " is not a non-zero multiple of 16");
      if (d.len / sizeof(Descriptor) > kMaxIndirectDescriptors)
        return fail(prefix + where + " indirect table of " +
                    std::to_string(d.len / sizeof(Descriptor)) + " descriptors exceeds " +
                    std::to_string(kMaxIndirectDescriptors));
      const MemoryRegion* region = memory.find_region(d.addr);
      if (d.addr > UINT64_MAX - d.len || region == nullptr || !region->contains(d.addr, d.len))
        return fail(prefix + where + " indirect table addr " + hex(d.addr) + " len " +
                    std::to_string(d.len) + " is outside guest RAM");
      table_gpa = d.addr;
      table_len = d.len / sizeof(Descriptor);
      in_indirect = true;
      walked = 0;
      index = 0;
      continue;
    }

    TRY_VOID(builder.add(where, d));
    if (!(d.flags & kDescFlagNext)) break;
    if (d.next >= table_len)
      return fail(prefix + where + " next " + std::to_string(d.next) +
                  " >= " + (in_indirect ? "indirect table length " : "queue size ") +
                  std::to_string(table_len));
    index = d.next;
  }
  return builder.take();
}

// ---- ChainReader ----

ChainReader::ChainReader(const GuestMemory& memory, const DescriptorChain& chain)
    : memory_(memory),
      buffers_(chain.readable),
      head_(chain.head),
      remaining_(chain.readable_bytes) {}

Result<void> ChainReader::read(std::span<uint8_t> out) {
  if (out.size() > remaining_)
    return fail("chain head " + std::to_string(head_) + " read of " + std::to_string(out.size()) +
                " bytes: only " + std::to_string(remaining_) + " readable bytes left");
  return advance(out.size(), out.data());
}

Result<void> ChainReader::skip(uint64_t n) {
  if (n > remaining_)
    return fail("chain head " + std::to_string(head_) + " skip of " + std::to_string(n) +
                " bytes: only " + std::to_string(remaining_) + " readable bytes left");
  return advance(n, nullptr);
}

Result<void> ChainReader::advance(uint64_t n, uint8_t* out) {
  while (n > 0) {
    const GuestBuffer& b = buffers_[index_];
    uint64_t piece = std::min<uint64_t>(n, b.len - offset_);
    if (out != nullptr) {
      TRY_VOID(memory_.read(b.gpa + offset_, std::span(out, piece)));
      out += piece;
    }
    offset_ += piece;
    n -= piece;
    remaining_ -= piece;
    consumed_ += piece;
    if (offset_ == b.len) {
      ++index_;
      offset_ = 0;
    }
  }
  return {};
}

// ---- ChainWriter ----

ChainWriter::ChainWriter(GuestMemory& memory, const DescriptorChain& chain)
    : memory_(memory),
      buffers_(chain.writable),
      head_(chain.head),
      remaining_(chain.writable_bytes) {}

Result<void> ChainWriter::write(std::span<const uint8_t> data) {
  if (data.size() > remaining_)
    return fail("chain head " + std::to_string(head_) + " write of " + std::to_string(data.size()) +
                " bytes: only " + std::to_string(remaining_) + " writable bytes left");
  return advance(data.size(), data.data());
}

Result<std::span<uint8_t>> ChainWriter::next_span(uint64_t max_len) {
  if (remaining_ == 0 || max_len == 0) return std::span<uint8_t>();
  const GuestBuffer& b = buffers_[index_];
  return memory_.host_span(b.gpa + offset_, std::min<uint64_t>(max_len, b.len - offset_));
}

Result<void> ChainWriter::commit(uint64_t n) {
  if (n > remaining_)
    return fail("chain head " + std::to_string(head_) + " commit of " + std::to_string(n) +
                " bytes: only " + std::to_string(remaining_) + " writable bytes left");
  return advance(n, nullptr);
}

Result<void> ChainWriter::advance(uint64_t n, const uint8_t* data) {
  while (n > 0) {
    const GuestBuffer& b = buffers_[index_];
    uint64_t piece = std::min<uint64_t>(n, b.len - offset_);
    if (data != nullptr) {
      TRY_VOID(memory_.write(b.gpa + offset_, std::span(data, piece)));  // marks dirty
      data += piece;
    } else {
      memory_.mark_dirty(b.gpa + offset_, piece);
    }
    offset_ += piece;
    n -= piece;
    remaining_ -= piece;
    written_ += piece;
    if (offset_ == b.len) {
      ++index_;
      offset_ = 0;
    }
  }
  return {};
}

}  // namespace godwit::virtio
