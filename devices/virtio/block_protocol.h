// The virtio-blk wire format (virtio 1.2 section 5.2): feature bits, request
// types, status values, the 16-byte request header, the 16-byte
// discard / write-zeroes segment and struct virtio_blk_config. All fields are
// little-endian, as on x86, so the structs are used as they lie in memory.
//
//   request chain:  | header (16, readable) | data ... | status (1, last writable byte) |
//   header:         | type le32 | reserved le32 | sector le64 |
//   segment:        | sector le64 | num_sectors le32 | flags le32 (bit 0 UNMAP) |
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace godwit::virtio::blk {

/// Bytes per virtio-blk sector: `sector` and `capacity` count these.
inline constexpr uint64_t kSectorSize = 512;
/// log2(kSectorSize).
inline constexpr unsigned kSectorShift = 9;

/// VIRTIO_BLK_F_SEG_MAX: seg_max is valid.
inline constexpr uint64_t kFeatureSegMax = 1ull << 2;
/// VIRTIO_BLK_F_RO: the disk is read-only.
inline constexpr uint64_t kFeatureReadOnly = 1ull << 5;
/// VIRTIO_BLK_F_BLK_SIZE: blk_size is valid.
inline constexpr uint64_t kFeatureBlockSize = 1ull << 6;
/// VIRTIO_BLK_F_FLUSH: VIRTIO_BLK_T_FLUSH is supported.
inline constexpr uint64_t kFeatureFlush = 1ull << 9;
/// VIRTIO_BLK_F_DISCARD: VIRTIO_BLK_T_DISCARD and its config fields.
inline constexpr uint64_t kFeatureDiscard = 1ull << 13;
/// VIRTIO_BLK_F_WRITE_ZEROES: VIRTIO_BLK_T_WRITE_ZEROES and its config fields.
inline constexpr uint64_t kFeatureWriteZeroes = 1ull << 14;

/// VIRTIO_BLK_T_IN: read sectors into the writable data buffers.
inline constexpr uint32_t kRequestIn = 0;
/// VIRTIO_BLK_T_OUT: write the readable data buffers to sectors.
inline constexpr uint32_t kRequestOut = 1;
/// VIRTIO_BLK_T_FLUSH: make completed writes durable.
inline constexpr uint32_t kRequestFlush = 4;
/// VIRTIO_BLK_T_GET_ID: the 20-byte device id string.
inline constexpr uint32_t kRequestGetId = 8;
/// VIRTIO_BLK_T_DISCARD: deallocate ranges (contents afterwards unspecified).
inline constexpr uint32_t kRequestDiscard = 11;
/// VIRTIO_BLK_T_WRITE_ZEROES: make ranges read as zeroes.
inline constexpr uint32_t kRequestWriteZeroes = 13;

/// VIRTIO_BLK_S_OK.
inline constexpr uint8_t kStatusOk = 0;
/// VIRTIO_BLK_S_IOERR.
inline constexpr uint8_t kStatusIoErr = 1;
/// VIRTIO_BLK_S_UNSUPP.
inline constexpr uint8_t kStatusUnsupported = 2;

/// Length of the GET_ID answer (NUL-padded, no terminator when full).
inline constexpr size_t kIdBytes = 20;
/// VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP: the device may deallocate the range.
inline constexpr uint32_t kSegmentFlagUnmap = 1;

/// struct virtio_blk_outhdr: the readable header every request starts with.
struct RequestHeader {
  uint32_t type = 0;      ///< kRequest*
  uint32_t reserved = 0;  ///< ignored (Linux once put the I/O priority here)
  uint64_t sector = 0;    ///< first sector for IN / OUT, unused otherwise
};
static_assert(sizeof(RequestHeader) == 16 && std::is_trivially_copyable_v<RequestHeader>);

/// struct virtio_blk_discard_write_zeroes: one range of a DISCARD or
/// WRITE_ZEROES request (the data part is an array of these).
struct RangeSegment {
  uint64_t sector = 0;       ///< first sector
  uint32_t num_sectors = 0;  ///< sectors in the range
  uint32_t flags = 0;        ///< kSegmentFlagUnmap; other bits must be 0
};
static_assert(sizeof(RangeSegment) == 16 && std::is_trivially_copyable_v<RangeSegment>);

/// struct virtio_blk_config up to max_secure_erase_sectors (the secure-erase
/// and zoned fields are not offered; those beyond this struct read 0).
struct Config {
  uint64_t capacity = 0;                  ///< 0x00: size in 512-byte sectors
  uint32_t size_max = 0;                  ///< 0x08: (SIZE_MAX, not offered)
  uint32_t seg_max = 0;                   ///< 0x0c: data segments per request (SEG_MAX)
  uint16_t geometry_cylinders = 0;        ///< 0x10: (GEOMETRY, not offered)
  uint8_t geometry_heads = 0;             ///< 0x12
  uint8_t geometry_sectors = 0;           ///< 0x13
  uint32_t blk_size = 0;                  ///< 0x14: logical block size (BLK_SIZE)
  uint8_t physical_block_exp = 0;         ///< 0x18: (TOPOLOGY, not offered)
  uint8_t alignment_offset = 0;           ///< 0x19
  uint16_t min_io_size = 0;               ///< 0x1a
  uint32_t opt_io_size = 0;               ///< 0x1c
  uint8_t writeback = 0;                  ///< 0x20: (CONFIG_WCE, not offered)
  uint8_t unused0 = 0;                    ///< 0x21
  uint16_t num_queues = 0;                ///< 0x22: (MQ, not offered)
  uint32_t max_discard_sectors = 0;       ///< 0x24: per segment (DISCARD)
  uint32_t max_discard_seg = 0;           ///< 0x28: segments per request
  uint32_t discard_sector_alignment = 0;  ///< 0x2c: in sectors
  uint32_t max_write_zeroes_sectors = 0;  ///< 0x30: per segment (WRITE_ZEROES)
  uint32_t max_write_zeroes_seg = 0;      ///< 0x34: segments per request
  uint8_t write_zeroes_may_unmap = 0;     ///< 0x38: UNMAP may deallocate
  uint8_t unused1[3] = {};                ///< 0x39
  uint32_t max_secure_erase_sectors = 0;  ///< 0x3c: (SECURE_ERASE, not offered)
};
static_assert(sizeof(Config) == 0x40 && std::is_trivially_copyable_v<Config>);
static_assert(offsetof(Config, blk_size) == 0x14 && offsetof(Config, num_queues) == 0x22 &&
              offsetof(Config, max_discard_sectors) == 0x24 &&
              offsetof(Config, write_zeroes_may_unmap) == 0x38);

}  // namespace godwit::virtio::blk
