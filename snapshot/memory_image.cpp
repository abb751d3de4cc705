// MemoryImage: chain checks, page location lookup and verified chunk reads.
#include "snapshot/memory_image.h"

#include <cstring>

namespace godwit::snapshot {

Result<MemoryImage> MemoryImage::open(std::span<const std::string> chain) {
  if (chain.empty()) return fail("memory snapshot chain is empty (need at least a full snapshot)");
  MemoryImage image;
  for (size_t i = 0; i < chain.size(); ++i) {
    MemoryFile file = TRY(MemoryFile::open(chain[i]));
    const MemoryFileHeader& h = file.header();
    if (i == 0 && h.kind != MemoryFileKind::full)
      return fail("memory snapshot chain: the first file " + chain[i] + " is a diff (parent " +
                  h.parent.hex() + "); a chain starts with a full snapshot");
    if (i > 0) {
      const MemoryFile& prev = image.files_.back();
      if (h.kind != MemoryFileKind::diff)
        return fail("memory snapshot chain: " + chain[i] +
                    " is a full snapshot; only the first file of a chain may be full");
      if (h.parent != prev.header().id)
        return fail("memory snapshot chain: diff " + chain[i] + " was taken on top of snapshot " +
                    h.parent.hex() + ", but the previous file " + prev.path() + " is snapshot " +
                    prev.header().id.hex() + " (wrong base or wrong order)");
      if (!same_regions(h.regions, prev.header().regions))
        return fail("memory snapshot chain: " + chain[i] + " describes regions " +
                    describe_regions(h.regions) + " but " + prev.path() + " describes " +
                    describe_regions(prev.header().regions));
    }
    image.files_.push_back(std::move(file));
  }
  return image;
}

Result<void> MemoryImage::check_layout(std::span<const RegionSpec> regions) const {
  if (same_regions(regions, this->regions())) return {};
  return fail("memory snapshot " + files_.back().path() + " holds guest RAM " +
              describe_regions(this->regions()) + " but the destination guest memory is " +
              describe_regions(regions));
}

size_t MemoryImage::owner(size_t chunk, uint32_t page) const {
  for (size_t i = files_.size(); i-- > 1;)
    if (bit_test(files_[i].chunk(chunk).covered, page)) return i;
  return 0;  // the base is full: it covers every page
}

std::vector<std::string> MemoryImage::paths() const {
  std::vector<std::string> out;
  for (const MemoryFile& f : files_) out.push_back(f.path());
  return out;
}

Result<PageLocation> MemoryImage::locate(uint64_t gpa) const {
  auto chunk = layout().chunk_of(gpa);
  if (!chunk)
    return fail("memory snapshot: gpa " + hex_u64(gpa) + " is outside the guest RAM " +
                describe_regions(regions()));
  auto page = static_cast<uint32_t>((gpa - layout()[*chunk].gpa) / kPageSize);
  size_t i = owner(*chunk, page);
  const MemoryFile& file = files_[i];
  PageLocation where;
  where.file = i;
  where.chunk = *chunk;
  if (!bit_test(file.chunk(*chunk).present, page)) return where;
  where.zero = false;
  where.fd = file.fd();
  where.offset = file.page_offset(*chunk, page);
  return where;
}

Result<void> MemoryImage::read_chunk(size_t chunk, std::span<uint8_t> out) const {
  const ChunkInfo& info = layout()[chunk];
  if (out.size() != uint64_t{info.pages} * kPageSize)
    return fail(files_.back().where(chunk) + ": read_chunk buffer of " +
                std::to_string(out.size()) + " bytes, the chunk has " + std::to_string(info.pages) +
                " pages");
  // Oldest to newest: each file overwrites the pages it covers, so the
  // newest covering file wins; every file's data is read and verified.
  std::vector<uint8_t*> targets;
  for (const MemoryFile& file : files_) {
    const ChunkEntry& e = file.chunk(chunk);
    targets.clear();
    for (uint32_t p = 0; p < info.pages; ++p) {
      if (!bit_test(e.covered, p)) continue;
      uint8_t* page = out.data() + uint64_t{p} * kPageSize;
      if (bit_test(e.present, p))
        targets.push_back(page);
      else
        std::memset(page, 0, kPageSize);
    }
    TRY_VOID(file.read_chunk_data(chunk, targets));
  }
  return {};
}

Result<void> MemoryImage::verify_chunk(size_t chunk) const {
  std::vector<uint8_t> scratch(kChunkBytes);
  return verify_chunk_into(chunk, scratch);
}

Result<void> MemoryImage::verify_chunk_into(size_t chunk, std::span<uint8_t> scratch) const {
  std::vector<uint8_t*> targets;
  for (const MemoryFile& file : files_) {
    targets.clear();
    for (uint32_t i = 0; i < file.chunk(chunk).data_pages; ++i)
      targets.push_back(scratch.data() + uint64_t{i} * kPageSize);
    TRY_VOID(file.read_chunk_data(chunk, targets));
  }
  return {};
}

Result<void> MemoryImage::verify_all() const {
  std::vector<uint8_t> scratch(kChunkBytes);
  for (size_t c = 0; c < layout().size(); ++c) TRY_VOID(verify_chunk_into(c, scratch));
  return {};
}

}  // namespace godwit::snapshot
