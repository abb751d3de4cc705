// MemoryFileBuilder: chunk planning (zero detection + hashing), batched
// pwritev of data pages, then index, header and an atomic rename.
#include "snapshot/memory_file_builder.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace godwit::snapshot {
namespace {

constexpr size_t kMaxIovecs = IOV_MAX;
constexpr uint64_t kFlushBytes = 16 * kMiB;

std::string parent_dir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes all of `iov` at `offset`, continuing after short writes.
Result<void> pwritev_all(int fd, std::vector<iovec>& iov, uint64_t offset,
                         const std::string& what) {
  size_t first = 0;
  while (first < iov.size()) {
    ssize_t n = ::pwritev(fd, iov.data() + first, static_cast<int>(iov.size() - first),
                          static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("write " + what + " at offset " + std::to_string(offset));
    }
    if (n == 0)
      return fail("write " + what + " at offset " + std::to_string(offset) + ": no progress");
    offset += static_cast<uint64_t>(n);
    auto left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return {};
}

}  // namespace

ChunkPlan plan_chunk(const SnapshotId& id, const ChunkInfo& chunk, const uint8_t* bytes,
                     const ChunkBitmap& covered, const ChunkBitmap& maybe_data) {
  ChunkPlan plan;
  plan.covered = covered;
  ChunkHasher hasher(id, chunk.gpa);
  for (uint32_t p = 0; p < chunk.pages; ++p) {
    if (!bit_test(covered, p) || !bit_test(maybe_data, p)) continue;
    const uint8_t* page = bytes + uint64_t{p} * kPageSize;
    if (page_is_zero(page)) continue;
    bit_set(plan.present, p);
    hasher.update(page, kPageSize);
  }
  plan.data_hash = hasher.digest();
  return plan;
}

Result<MemoryFileBuilder> MemoryFileBuilder::create(const std::string& path, MemoryFileKind kind,
                                                    const SnapshotId& id, const SnapshotId& parent,
                                                    std::span<const RegionSpec> regions) {
  if (regions.empty() || regions.size() > kMaxRegions)
    return fail("write memory file " + path + ": " + std::to_string(regions.size()) +
                " regions (must be 1 to " + std::to_string(kMaxRegions) + ")");
  MemoryFileBuilder b;
  b.path_ = path;
  b.temp_path_ = path + ".partial-" + std::to_string(::getpid());
  int fd = ::open(b.temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail_errno("write memory file: create " + b.temp_path_);
  b.fd_.reset(fd);
  b.header_.kind = kind;
  b.header_.id = id;
  b.header_.parent = parent;
  b.header_.regions.assign(regions.begin(), regions.end());
  b.header_.data_offset = data_offset_for(regions.size());
  b.layout_ = ChunkLayout(regions);
  b.header_.chunk_count = b.layout_.size();
  b.index_.assign(b.layout_.size() * kChunkEntryBytes, 0);
  b.write_offset_ = b.header_.data_offset;
  return b;
}

MemoryFileBuilder::~MemoryFileBuilder() {
  if (!finished_ && !temp_path_.empty() && fd_.valid()) ::unlink(temp_path_.c_str());
}

Result<void> MemoryFileBuilder::queue(const uint8_t* data, size_t len) {
  if (!pending_.empty()) {
    iovec& last = pending_.back();
    if (static_cast<uint8_t*>(last.iov_base) + last.iov_len == data) {
      last.iov_len += len;
      pending_bytes_ += len;
      return pending_bytes_ >= kFlushBytes ? flush() : Result<void>{};
    }
  }
  if (pending_.size() == kMaxIovecs) TRY_VOID(flush());
  pending_.push_back({const_cast<uint8_t*>(data), len});
  pending_bytes_ += len;
  return pending_bytes_ >= kFlushBytes ? flush() : Result<void>{};
}

Result<void> MemoryFileBuilder::flush() {
  if (pending_.empty()) return {};
  TRY_VOID(pwritev_all(fd_.get(), pending_, write_offset_, "memory file " + temp_path_));
  write_offset_ += pending_bytes_;
  pending_.clear();
  pending_bytes_ = 0;
  return {};
}

Result<void> MemoryFileBuilder::append_chunk(const ChunkPlan& plan, const uint8_t* bytes,
                                             bool bytes_reused) {
  if (next_chunk_ >= layout_.size())
    return fail("write memory file " + path_ + ": more chunks than the layout has");
  const ChunkInfo& chunk = layout_[next_chunk_];
  ChunkEntry entry;
  entry.covered = plan.covered;
  entry.present = plan.present;
  entry.covered_count = bit_count(plan.covered);
  entry.data_pages = bit_count(plan.present);
  entry.data_hash = plan.data_hash;
  entry.data_offset = write_offset_ + pending_bytes_;
  for (uint32_t p = 0; p < chunk.pages; ++p)
    if (bit_test(plan.present, p)) TRY_VOID(queue(bytes + uint64_t{p} * kPageSize, kPageSize));
  if (bytes_reused) TRY_VOID(flush());
  encode_chunk_entry(entry, next_chunk_, header_.id,
                     std::span(index_).subspan(next_chunk_ * kChunkEntryBytes, kChunkEntryBytes));
  header_.covered_pages += entry.covered_count;
  header_.data_pages += entry.data_pages;
  ++next_chunk_;
  return {};
}

Result<MemoryFileSummary> MemoryFileBuilder::finish(bool sync) {
  if (next_chunk_ != layout_.size())
    return fail("write memory file " + path_ + ": only " + std::to_string(next_chunk_) + " of " +
                std::to_string(layout_.size()) + " chunks appended");
  TRY_VOID(flush());
  header_.index_offset = write_offset_;
  header_.file_size = header_.index_offset + index_.size();
  std::vector<iovec> tail = {{index_.data(), index_.size()}};
  TRY_VOID(pwritev_all(fd_.get(), tail, header_.index_offset, "memory file index " + temp_path_));
  std::vector<uint8_t> block = encode_header_block(header_);
  std::vector<iovec> head = {{block.data(), block.size()}};
  TRY_VOID(pwritev_all(fd_.get(), head, 0, "memory file header " + temp_path_));
  if (sync && ::fsync(fd_.get()) != 0) return fail_errno("fsync " + temp_path_);
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0)
    return fail_errno("rename " + temp_path_ + " to " + path_);
  finished_ = true;
  if (sync) {
    std::string dir = parent_dir(path_);
    UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd || ::fsync(dir_fd.get()) != 0) return fail_errno("fsync directory " + dir);
  }
  return MemoryFileSummary{header_.id, header_.kind, header_.covered_pages, header_.data_pages,
                           header_.file_size};
}

}  // namespace godwit::snapshot
