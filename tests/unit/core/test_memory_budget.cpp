#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "core/error.h"
#include "core/file_io.h"
#include "core/memory_budget.h"

namespace l4 {
namespace {

TEST(MemoryBudget, ParsesMemAvailableInKib) {
  const std::string meminfo =
      "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\nBuffers: 1 "
      "kB\n";
  EXPECT_EQ(parse_meminfo_available(meminfo), 20000000LL * 1024);
  EXPECT_EQ(parse_meminfo_available("MemTotal: 5 kB\n"), -1);  // old kernels: unknown, not zero
}

TEST(MemoryBudget, CgroupLimitUnlimitedIsUnknown) {
  EXPECT_EQ(parse_cgroup_limit("max\n"), -1);                  // cgroup v2
  EXPECT_EQ(parse_cgroup_limit("9223372036854771712\n"), -1);  // cgroup v1 "no limit"
  EXPECT_EQ(parse_cgroup_limit("4294967296\n"), 4294967296LL);
  EXPECT_EQ(parse_cgroup_limit(""), -1);
  EXPECT_EQ(parse_cgroup_limit("12abc"), -1);
}

TEST(MemoryBudget, MemoryStatField) {
  const std::string stat = "cache 100\nrss 200\ninactive_file 300\ntotal_inactive_file 400\n";
  EXPECT_EQ(parse_memory_stat_field(stat, "inactive_file"), 300);
  EXPECT_EQ(parse_memory_stat_field(stat, "total_inactive_file"), 400);
  EXPECT_EQ(parse_memory_stat_field(stat, "absent"), -1);
}

TEST(MemoryBudget, RequireMemoryNamesDriversAndBytes) {
  const AvailableMemory available{1000, "test figure"};
  EXPECT_NO_THROW(require_memory(1000, available, "run", "key.a", "hint"));  // equal fits: no margin taken
  EXPECT_NO_THROW(require_memory(5000, AvailableMemory{}, "run", "key.a", "hint"));  // unknown: skipped
  try {
    require_memory(1001, available, "recipe.yaml: training", "train.micro_batch x data.seq_len", "set X");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const char* needle : {"recipe.yaml: training", "(1001 bytes)", "(1000 bytes)", "test figure",
                               "train.micro_batch x data.seq_len", "set X"})
      EXPECT_NE(what.find(needle), std::string::npos) << needle << " not in: " << what;
  }
}

TEST(MemoryBudget, AvailableHostMemoryIsKnownOnLinux) {
  const AvailableMemory m = available_host_memory();
  EXPECT_GT(m.bytes, 0);
  EXPECT_FALSE(m.source.empty());
}

TEST(WriteError, NamesAFullDiskAndTheFileSizeLimit) {
  EXPECT_EQ(write_error("/x/y.h5", ENOSPC).rfind("disk full (no space left on device) writing /x/y.h5", 0),
            0u);
  EXPECT_EQ(write_error("/x/y.h5", EDQUOT).rfind("disk full", 0), 0u);
  EXPECT_NE(write_error("/tmp/y.h5", EFBIG).find("ulimit -f"), std::string::npos);
  EXPECT_TRUE(out_of_space("/tmp/y", EFBIG));
  EXPECT_EQ(write_error("/tmp/y.h5", EIO), "/tmp/y.h5: write failed: Input/output error");
  EXPECT_THROW(fail_write("/tmp/y", ENOSPC), Error);
}

}  // namespace
}  // namespace l4
