// MemoryFile: open-time verification of header, geometry, size and index;
// checksummed chunk reads with preadv straight into the caller's pages.
#include "snapshot/memory_file.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cerrno>

namespace godwit::snapshot {

Result<MemoryFile> MemoryFile::open(const std::string& path) {
  MemoryFile file;
  file.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno("open memory file " + path);
  file.fd_.reset(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno("stat memory file " + path);
  auto size = static_cast<uint64_t>(st.st_size);
  std::string where = "memory file " + path;

  std::vector<uint8_t> fixed(std::min<uint64_t>(size, kHeaderBytes));
  TRY_VOID(file.read_exact(0, fixed, "header"));
  file.header_ = TRY(decode_header_fixed(fixed, path));
  MemoryFileHeader& h = file.header_;
  uint64_t block_size = data_offset_for(h.regions.size());
  if (size < block_size)
    return fail(where + ": truncated: file is " + std::to_string(size) +
                " bytes, the header block alone needs " + std::to_string(block_size));
  std::vector<uint8_t> block(block_size);
  TRY_VOID(file.read_exact(0, block, "header block"));
  TRY_VOID(decode_header_block(block, h, path));
  file.layout_ = ChunkLayout(h.regions);
  TRY_VOID(file.check_geometry(size));
  TRY_VOID(file.load_index());
  return file;
}

Result<void> MemoryFile::read_exact(uint64_t offset, std::span<uint8_t> out,
                                    const std::string& what) const {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n =
        ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("memory file " + path_ + ": read " + what);
    if (n == 0)
      return fail("memory file " + path_ + ": truncated while reading " + what + " at offset " +
                  std::to_string(offset + done));
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<void> MemoryFile::check_geometry(uint64_t actual_size) const {
  const MemoryFileHeader& h = header_;
  std::string where = "memory file " + path_ + ": ";
  if (h.page_size != kPageSize)
    return fail(where + "page size " + std::to_string(h.page_size) + " is not supported (only " +
                std::to_string(kPageSize) + ")");
  if (h.chunk_pages != kChunkPages)
    return fail(where + "chunk size " + std::to_string(h.chunk_pages) +
                " pages is not supported (only " + std::to_string(kChunkPages) + ")");
  if (h.kind != MemoryFileKind::full && h.kind != MemoryFileKind::diff)
    return fail(where + "unknown kind " + std::to_string(static_cast<uint32_t>(h.kind)));
  if ((h.kind == MemoryFileKind::full) != h.parent.is_zero())
    return fail(where + std::string("a ") + kind_name(h.kind) + " snapshot with parent id " +
                h.parent.hex() + " (only diffs have a parent)");
  uint64_t end = 0;
  for (size_t r = 0; r < h.regions.size(); ++r) {
    const RegionSpec& region = h.regions[r];
    if (region.size == 0 || region.size % kPageSize != 0 || region.gpa % kPageSize != 0 ||
        region.gpa + region.size < region.gpa || (r > 0 && region.gpa < end))
      return fail(where + "invalid region table " + describe_regions(h.regions));
    end = region.gpa + region.size;
  }
  uint64_t index_offset = h.data_offset + h.data_pages * kPageSize;
  if (h.data_offset != data_offset_for(h.regions.size()) || h.chunk_count != layout_.size() ||
      h.index_offset != index_offset ||
      h.file_size != index_offset + h.chunk_count * kChunkEntryBytes)
    return fail(where + "inconsistent header (data offset " + std::to_string(h.data_offset) + ", " +
                std::to_string(h.data_pages) + " data pages, index offset " +
                std::to_string(h.index_offset) + ", " + std::to_string(h.chunk_count) +
                " chunks, file size " + std::to_string(h.file_size) + ")");
  if (actual_size < h.file_size)
    return fail(where + "truncated: file is " + std::to_string(actual_size) +
                " bytes, its header says " + std::to_string(h.file_size));
  if (actual_size > h.file_size)
    return fail(where + "file is " + std::to_string(actual_size) + " bytes, its header says " +
                std::to_string(h.file_size) + " (" + std::to_string(actual_size - h.file_size) +
                " unexpected trailing bytes)");
  return {};
}

Result<void> MemoryFile::load_index() {
  const MemoryFileHeader& h = header_;
  std::vector<uint8_t> index(h.chunk_count * kChunkEntryBytes);
  TRY_VOID(read_exact(h.index_offset, index, "chunk index"));
  entries_.reserve(h.chunk_count);
  uint64_t next_data = h.data_offset;
  uint64_t covered_total = 0;
  for (size_t c = 0; c < h.chunk_count; ++c) {
    auto entry = decode_chunk_entry(
        std::span(index).subspan(c * kChunkEntryBytes, kChunkEntryBytes), c, h.id);
    if (!entry) return fail(where(c) + ": " + entry.error().message);
    ChunkBitmap valid = bits_first(layout_[c].pages);
    bool consistent = entry->data_offset == next_data &&
                      entry->data_pages == bit_count(entry->present) &&
                      entry->covered_count == bit_count(entry->covered);
    for (size_t w = 0; w < kChunkBitmapWords; ++w) {
      consistent = consistent && (entry->present[w] & ~entry->covered[w]) == 0 &&
                   (entry->covered[w] & ~valid[w]) == 0;
      if (h.kind == MemoryFileKind::full) consistent = consistent && entry->covered[w] == valid[w];
    }
    if (!consistent)
      return fail(where(c) + ": index entry is inconsistent (data offset " +
                  std::to_string(entry->data_offset) + ", expected " + std::to_string(next_data) +
                  "; " + std::to_string(entry->data_pages) + " data pages, " +
                  std::to_string(entry->covered_count) + " covered)");
    next_data += uint64_t{entry->data_pages} * kPageSize;
    covered_total += entry->covered_count;
    entries_.push_back(*entry);
  }
  if (next_data != h.index_offset || covered_total != h.covered_pages)
    return fail("memory file " + path_ + ": chunk index does not add up to the header (" +
                std::to_string((next_data - h.data_offset) / kPageSize) + " data pages and " +
                std::to_string(covered_total) + " covered pages in the index, header says " +
                std::to_string(h.data_pages) + " and " + std::to_string(h.covered_pages) + ")");
  return {};
}

uint64_t MemoryFile::page_offset(size_t index, uint32_t page) const {
  const ChunkEntry& e = entries_[index];
  return e.data_offset + uint64_t{bit_rank(e.present, page)} * kPageSize;
}

std::string MemoryFile::where(size_t index) const {
  return "memory file " + path_ + ": " + layout_.describe(index);
}

Result<void> MemoryFile::read_chunk_data(size_t index, std::span<uint8_t* const> targets) const {
  const ChunkEntry& e = entries_[index];
  if (targets.size() != e.data_pages)
    return fail(where(index) + ": " + std::to_string(targets.size()) + " page targets for " +
                std::to_string(e.data_pages) + " data pages");
  std::vector<iovec> iov;
  for (uint8_t* t : targets) {
    if (!iov.empty() && static_cast<uint8_t*>(iov.back().iov_base) + iov.back().iov_len == t)
      iov.back().iov_len += kPageSize;
    else
      iov.push_back({t, kPageSize});
  }
  uint64_t offset = e.data_offset;
  size_t first = 0;
  while (first < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = ::preadv(fd_.get(), iov.data() + first, count, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(where(index) + ": read page data");
    if (n == 0)
      return fail(where(index) + ": truncated page data at offset " + std::to_string(offset));
    offset += static_cast<uint64_t>(n);
    auto left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  ChunkHasher hasher(header_.id, layout_[index].gpa);
  for (uint8_t* t : targets) hasher.update(t, kPageSize);
  uint64_t actual = hasher.digest();
  if (actual != e.data_hash)
    return fail(where(index) + ": page data checksum mismatch (stored " + hex_u64(e.data_hash) +
                ", computed " + hex_u64(actual) + ") in file bytes [" +
                std::to_string(e.data_offset) + ", " +
                std::to_string(e.data_offset + uint64_t{e.data_pages} * kPageSize) + ")");
  return {};
}

}  // namespace godwit::snapshot
