// PUT /vm/snapshot (vmm/api/vm_routes.cpp) with a fake VmControl that
// records the request: the body reaches the VMM as JSON, errors map to HTTP
// statuses by their errno (EBUSY 409, EINVAL 400, ENOSYS 501, others 500), a
// body that is not JSON is a 400 before the VMM sees it, and a success is a
// 200 carrying the VMM's report. Also the VMM's parse of that body
// (parse_snapshot_request) and the report it answers with.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "api_test_support.h"
#include "vmm/api/http_server.h"
#include "vmm/api/vm_control.h"
#include "vmm/snapshot/snapshotter.h"

namespace godwit {
namespace {

using ::testing::HasSubstr;

/// FakeVm plus a snapshot() that records what the route passed and answers
/// with a scripted error or report.
class SnapshotRecordingVm : public test::FakeVm {
 public:
  Result<nlohmann::json> snapshot(const nlohmann::json& request) override {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
    if (error_) return std::unexpected(*error_);
    return report_;
  }
  void answer_error(std::string message, int code) {
    std::lock_guard lock(mutex_);
    error_ = Error{std::move(message), code};
  }
  void answer_report(nlohmann::json report) {
    std::lock_guard lock(mutex_);
    error_.reset();
    report_ = std::move(report);
  }
  std::vector<nlohmann::json> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  std::mutex mutex_;
  std::vector<nlohmann::json> requests_;
  std::optional<Error> error_;
  nlohmann::json report_ = nlohmann::json::object();
};

api::Request put_snapshot(std::string body) {
  return api::Request{
      .method = "PUT", .path = "/vm/snapshot", .query = {}, .body = std::move(body)};
}

class ApiSnapshotRoute : public ::testing::Test {
 protected:
  void SetUp() override { api::register_vm_routes(router_, vm_); }
  api::Response call(const std::string& body) { return router_.dispatch(put_snapshot(body)); }

  SnapshotRecordingVm vm_;
  api::Router router_;
};

TEST_F(ApiSnapshotRoute, TheBodyReachesTheVmmAsJson) {
  const nlohmann::json body = {{"dir", "/var/snap/1"}, {"type", "diff"}};
  vm_.answer_report({{"dir", "/var/snap/1"}});
  ASSERT_EQ(call(body.dump()).status, 200);
  ASSERT_EQ(vm_.requests().size(), 1u);
  EXPECT_EQ(vm_.requests()[0], body);
  // The route does not judge the members: that is the VMM's parse.
  ASSERT_EQ(call("{\"whatever\": [1, 2]}").status, 200);
  EXPECT_EQ(vm_.requests()[1], (nlohmann::json{{"whatever", {1, 2}}}));
}

TEST_F(ApiSnapshotRoute, SuccessIs200WithTheReport) {
  const nlohmann::json report = {
      {"dir", "/var/snap/1"}, {"type", "full"},         {"parent", nullptr},
      {"data_pages", 12},     {"zero_pages", 500},      {"memory_bytes", 53248},
      {"state_bytes", 4321},  {"bytes_written", 57569}, {"duration_ms", 12.5}};
  vm_.answer_report(report);
  api::Response response = call(R"({"dir": "/var/snap/1"})");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(response.body, report);
}

TEST_F(ApiSnapshotRoute, ErrorCodesPickTheStatus) {
  struct Case {
    int code;
    int status;
  };
  for (const Case& c : {Case{EBUSY, 409}, Case{EALREADY, 409}, Case{EINVAL, 400}, Case{ENOSYS, 501},
                        Case{EIO, 500}, Case{ENOSPC, 500}, Case{0, 500}}) {
    SCOPED_TRACE("errno " + std::to_string(c.code));
    const std::string message = "refused with " + std::to_string(c.code);
    vm_.answer_error(message, c.code);
    api::Response response = call(R"({"dir": "/var/snap/1"})");
    EXPECT_EQ(response.status, c.status);
    EXPECT_EQ(response.body, (nlohmann::json{{"error", message}}));
  }
}

TEST_F(ApiSnapshotRoute, ABodyThatIsNotJsonIs400AndNeverReachesTheVmm) {
  for (const char* body : {"", "dir=/var/snap", "{\"dir\": ", "{'dir': '/x'}"}) {
    SCOPED_TRACE(body);
    api::Response response = call(body);
    EXPECT_EQ(response.status, 400);
    EXPECT_TRUE(response.body.contains("error")) << response.body;
  }
  EXPECT_TRUE(vm_.requests().empty());
}

TEST_F(ApiSnapshotRoute, OnlyPutIsRouted) {
  api::Response get = router_.dispatch(
      api::Request{.method = "GET", .path = "/vm/snapshot", .query = {}, .body = ""});
  EXPECT_EQ(get.status, 405);
  EXPECT_TRUE(vm_.requests().empty());
}

TEST(ApiSnapshotRouteDefault, AVmmWithoutSnapshotsAnswers501) {
  test::FakeVm vm;  // does not override snapshot()
  api::Router router;
  api::register_vm_routes(router, vm);
  api::Response response = router.dispatch(put_snapshot(R"({"dir": "/var/snap/1"})"));
  EXPECT_EQ(response.status, 501);
  EXPECT_EQ(response.body["error"], "snapshots are not available from this VMM");
}

TEST(ApiSnapshotRouteServer, OverTheSocket) {
  SnapshotRecordingVm vm;
  vm.answer_report({{"dir", "/var/snap/2"}, {"type", "full"}});
  api::Router router;
  api::register_vm_routes(router, vm);
  test::TempSocketPath sock;
  auto server = api::HttpServer::start(sock.path(), std::move(router));
  ASSERT_TRUE(server) << server.error().message;
  auto reply = test::http_request(sock.path(), "PUT", "/vm/snapshot",
                                  R"({"dir": "/var/snap/2", "type": "full"})");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.json(), (nlohmann::json{{"dir", "/var/snap/2"}, {"type", "full"}}));
  vm.answer_error("the VM must be paused for a snapshot (it is running); PUT /vm/pause first",
                  EBUSY);
  auto busy = test::http_request(sock.path(), "PUT", "/vm/snapshot", R"({"dir": "/var/snap/3"})");
  EXPECT_EQ(busy.status, 409);
  EXPECT_THAT(busy.json().value("error", ""), HasSubstr("must be paused"));
  ASSERT_EQ(vm.requests().size(), 2u);
  EXPECT_EQ(vm.requests()[1], (nlohmann::json{{"dir", "/var/snap/3"}}));
}

// parse_snapshot_request: what the real VMM does with the body.

std::string request_error(const nlohmann::json& body, int* code = nullptr) {
  auto r = parse_snapshot_request(body);
  if (r) return "(accepted)";
  if (code) *code = r.error().code;
  return r.error().message;
}

TEST(ParseSnapshotRequest, TypeDefaultsToFull) {
  auto full = parse_snapshot_request({{"dir", "/var/snap/1"}});
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->dir, "/var/snap/1");
  EXPECT_FALSE(full->diff);
  auto explicit_full = parse_snapshot_request({{"dir", "/a"}, {"type", "full"}});
  ASSERT_TRUE(explicit_full);
  EXPECT_FALSE(explicit_full->diff);
  auto diff = parse_snapshot_request({{"type", "diff"}, {"dir", "/var/snap/2"}});
  ASSERT_TRUE(diff) << diff.error().message;
  EXPECT_TRUE(diff->diff);
  EXPECT_EQ(diff->dir, "/var/snap/2");
}

TEST(ParseSnapshotRequest, BadBodiesAre400WithTheReason) {
  struct Case {
    nlohmann::json body;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {nlohmann::json::array({"/x"}), "body must be a JSON object"},
           {"/var/snap", "body must be a JSON object"},
           {nlohmann::json::object(), "\"dir\" (a directory path) is required"},
           {{{"type", "full"}}, "\"dir\" (a directory path) is required"},
           {{{"dir", ""}}, "\"dir\" (a directory path) is required"},
           {{{"dir", 5}}, "\"dir\" (a directory path) is required"},
           {{{"dir", nullptr}}, "\"dir\" (a directory path) is required"},
           {{{"dir", "var/snap"}}, "\"dir\" must be an absolute path, got 'var/snap'"},
           {{{"dir", "./snap"}}, "\"dir\" must be an absolute path, got './snap'"},
           {{{"dir", "/x"}, {"type", "incremental"}},
            "\"type\" must be \"full\" or \"diff\", got 'incremental'"},
           {{{"dir", "/x"}, {"type", "Full"}}, "\"type\" must be \"full\" or \"diff\", got 'Full'"},
           {{{"dir", "/x"}, {"parent", "/y"}}, "unknown member \"parent\""},
           {{{"dir", "/x"}, {"type", "diff"}, {"sync", false}}, "unknown member \"sync\""},
       }) {
    SCOPED_TRACE(c.body.dump());
    int code = 0;
    EXPECT_EQ(request_error(c.body, &code), c.message);
    EXPECT_EQ(code, EINVAL) << "maps to 400";
    EXPECT_EQ(api::http_status_for(Error{c.message, code}, 500), 400);
  }
}

// A "type" that is not a string ({"dir": "/x", "type": 5}, null, an array)
// is a 400 like any other bad body (it once threw inside nlohmann::json and
// came back as a 500).
TEST(ParseSnapshotRequest, ANonStringTypeIsA400NotAnException) {
  for (const nlohmann::json& type :
       {nlohmann::json(5), nlohmann::json(nullptr), nlohmann::json::array({"full"})}) {
    SCOPED_TRACE(type.dump());
    int code = 0;
    std::string message;
    EXPECT_NO_THROW(message = request_error({{"dir", "/x"}, {"type", type}}, &code));
    EXPECT_THAT(message, HasSubstr("\"type\""));
    EXPECT_EQ(code, EINVAL);
  }
}

TEST(SnapshotReportJson, HasEveryDocumentedMember) {
  SnapshotReport r;
  r.dir = "/var/snap/2";
  r.kind = snapshot::MemoryFileKind::diff;
  r.parent_dir = "/var/snap/1";
  r.data_pages = 10;
  r.zero_pages = 2;
  r.memory_bytes = 1000;
  r.state_bytes = 234;
  r.duration_ms = 1.5;
  EXPECT_EQ(snapshot_report_json(r), (nlohmann::json{{"dir", "/var/snap/2"},
                                                     {"type", "diff"},
                                                     {"parent", "/var/snap/1"},
                                                     {"data_pages", 10},
                                                     {"zero_pages", 2},
                                                     {"memory_bytes", 1000},
                                                     {"state_bytes", 234},
                                                     {"bytes_written", 1234},
                                                     {"duration_ms", 1.5}}));
  r.kind = snapshot::MemoryFileKind::full;
  r.parent_dir.reset();
  auto full = snapshot_report_json(r);
  EXPECT_EQ(full["type"], "full");
  EXPECT_TRUE(full["parent"].is_null());
}

}  // namespace
}  // namespace godwit
