// The Migratable interface fails loudly: every operation a device does not
// implement returns an error naming the operation and the section, never a
// silent success (architecture.md §2).
#include <gtest/gtest.h>

#include "migration/migratable.h"

namespace godwit::migration {
namespace {

/// A device that implements nothing but its identity.
class BareDevice final : public Migratable {
 public:
  [[nodiscard]] SectionKey key() const override { return {"virtio-blk", 2}; }
  [[nodiscard]] uint32_t version() const override { return 3; }
};

std::string message(const auto& result) {
  return result ? std::string("(succeeded)") : result.error().message;
}

TEST(Migratable, EveryDefaultFailsNamingTheOperationAndTheSection) {
  BareDevice d;
  SectionWriter out;
  std::vector<uint8_t> none;
  SectionReader in("virtio-blk[2]", none);
  EXPECT_EQ(message(d.pending(PendingQuery::estimate)), "pending not supported by virtio-blk[2]");
  EXPECT_EQ(message(d.pending(PendingQuery::final)), "pending not supported by virtio-blk[2]");
  EXPECT_EQ(message(d.save_iterate(out)), "save_iterate not supported by virtio-blk[2]");
  EXPECT_EQ(message(d.save_complete(out)), "save_complete not supported by virtio-blk[2]");
  EXPECT_EQ(message(d.load(in, 3)), "load not supported by virtio-blk[2]");
  EXPECT_EQ(message(d.postcopy_prepare()), "postcopy_prepare not supported by virtio-blk[2]");
  EXPECT_EQ(message(d.cleanup(true)), "cleanup not supported by virtio-blk[2]");
  EXPECT_EQ(message(d.cleanup(false)), "cleanup not supported by virtio-blk[2]");
  EXPECT_EQ(out.size(), 0u) << "a failed default must not write anything";
}

TEST(Migratable, MinVersionDefaultsToTheCurrentVersion) {
  BareDevice d;
  EXPECT_EQ(d.min_version(), 3u);
}

}  // namespace
}  // namespace godwit::migration
