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

/// One walk over a chain. Error messages are only formatted on failure: the
/// walk runs for every request, so the success path allocates nothing but
/// the buffer lists.
class ChainWalk {
 public:
  ChainWalk(const GuestMemory& memory, const DescriptorTable& table, uint16_t head)
      : memory_(memory),
        table_(table),
        head_(head),
        table_gpa_(table.gpa),
        table_len_(table.size),
        index_(head) {
    chain_.head = head;
  }

  [[nodiscard]] Result<DescriptorChain> run() {
    if (head_ >= table_.size)
      return fail(prefix() + "head index " + std::to_string(head_) + " >= queue size " +
                  std::to_string(table_.size));
    for (;;) {
      if (++walked_ > table_len_)
        return fail(prefix() + "chain is longer than its " +
                    (in_indirect_ ? "indirect table (" : "queue (size ") +
                    std::to_string(table_len_) + (in_indirect_ ? " descriptors)" : ")") + " at " +
                    where() + ": a loop or an oversized chain");
      Result<Descriptor> loaded = memory_.read_obj<Descriptor>(table_gpa_ + 16ull * index_);
      if (!loaded) return fail(loaded.error().context(prefix() + "reading " + where()));
      const Descriptor d = *loaded;
      ++chain_.descriptor_count;
      if (d.flags & kDescFlagIndirect) {
        TRY_VOID(enter_indirect_table(d));
        continue;
      }
      TRY_VOID(add_buffer(d));
      if (!(d.flags & kDescFlagNext)) return std::move(chain_);
      if (d.next >= table_len_)
        return fail(at() + " next " + std::to_string(d.next) +
                    " >= " + (in_indirect_ ? "indirect table length " : "queue size ") +
                    std::to_string(table_len_));
      index_ = d.next;
    }
  }

 private:
  std::string prefix() const {
    return "virtqueue " + std::string(table_.name) + " chain head " + std::to_string(head_) + ": ";
  }
  std::string where() const {
    return (in_indirect_ ? "indirect descriptor " : "descriptor ") + std::to_string(index_);
  }
  std::string at() const { return prefix() + where(); }

  /// Rule 3: switches the walk to the indirect table `d` points at.
  [[nodiscard]] Result<void> enter_indirect_table(const Descriptor& d) {
    if (!table_.indirect)
      return fail(at() + " is INDIRECT but VIRTIO_F_INDIRECT_DESC was not negotiated");
    if (in_indirect_) return fail(at() + " is a nested INDIRECT descriptor");
    if (d.flags & kDescFlagNext) return fail(at() + " has both INDIRECT and NEXT set");
    if (d.len == 0 || d.len % sizeof(Descriptor) != 0)
      return fail(at() + " indirect table length " + std::to_string(d.len) +
                  " is not a non-zero multiple of 16");
    if (d.len / sizeof(Descriptor) > kMaxIndirectDescriptors)
      return fail(at() + " indirect table of " + std::to_string(d.len / sizeof(Descriptor)) +
                  " descriptors exceeds " + std::to_string(kMaxIndirectDescriptors));
    if (!in_ram(d))
      return fail(at() + " indirect table addr " + hex(d.addr) + " len " + std::to_string(d.len) +
                  " is outside guest RAM");
    table_gpa_ = d.addr;
    table_len_ = d.len / sizeof(Descriptor);
    in_indirect_ = true;
    walked_ = 0;
    index_ = 0;
    return {};
  }

  /// Rules 4, 5, 6: appends the buffer `d` describes.
  [[nodiscard]] Result<void> add_buffer(const Descriptor& d) {
    bool writable = (d.flags & kDescFlagWrite) != 0;
    if (!writable && seen_writable_)
      return fail(at() +
                  " is device-readable but follows a device-writable descriptor "
                  "(readable descriptors must come first)");
    seen_writable_ = seen_writable_ || writable;
    total_ += d.len;
    if (total_ > UINT32_MAX)
      return fail(at() + ": total chain length " + std::to_string(total_) + " overflows 32 bits");
    if (d.len == 0) return {};
    if (d.addr > UINT64_MAX - d.len)
      return fail(at() + " addr " + hex(d.addr) + " len " + std::to_string(d.len) +
                  " wraps around the address space");
    if (!in_ram(d))
      return fail(at() + " addr " + hex(d.addr) + " len " + std::to_string(d.len) +
                  " is outside guest RAM");
    if (writable) {
      chain_.writable.push_back({d.addr, d.len});
      chain_.writable_bytes += d.len;
    } else {
      chain_.readable.push_back({d.addr, d.len});
      chain_.readable_bytes += d.len;
    }
    return {};
  }

  /// True when [addr, addr + len) lies in one RAM region (= in RAM: the x86
  /// layout's regions are never adjacent).
  bool in_ram(const Descriptor& d) const {
    const MemoryRegion* region = memory_.find_region(d.addr);
    return d.addr <= UINT64_MAX - d.len && region != nullptr && region->contains(d.addr, d.len);
  }

  const GuestMemory& memory_;
  const DescriptorTable& table_;
  uint16_t head_;
  uint64_t table_gpa_;   ///< table being walked (descriptor or indirect table)
  uint32_t table_len_;   ///< its length in descriptors
  uint32_t index_;       ///< descriptor being looked at
  uint32_t walked_ = 0;  ///< descriptors walked in the current table
  bool in_indirect_ = false;
  bool seen_writable_ = false;
  uint64_t total_ = 0;
  DescriptorChain chain_;
};

}  // namespace

Result<DescriptorChain> walk_descriptor_chain(const GuestMemory& memory,
                                              const DescriptorTable& table, uint16_t head) {
  return ChainWalk(memory, table, head).run();
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
