// The /vm routes over a real server with a fake VmControl: info, run-state
// changes with their 409s, and guest memory reads with every parameter error.
#include <gtest/gtest.h>

#include "api_test_support.h"
#include "vmm/api/http_server.h"
#include "vmm/api/vm_control.h"

namespace godwit::api {
namespace {

using test::FakeVm;
using test::http_request;
using test::TempSocketPath;

class ApiVmRoutes : public ::testing::Test {
 protected:
  void SetUp() override {
    Router router;
    register_vm_routes(router, vm_);
    auto server = HttpServer::start(sock_.path(), std::move(router));
    ASSERT_TRUE(server.has_value()) << server.error().message;
    server_ = std::move(*server);
  }
  test::TestReply call(const std::string& method, const std::string& target) {
    return http_request(sock_.path(), method, target);
  }

  FakeVm vm_;
  TempSocketPath sock_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(ApiVmRoutes, GetVmReturnsInfo) {
  auto reply = call("GET", "/vm");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.json(), vm_.info());
}

TEST_F(ApiVmRoutes, PauseResumeShutdownAndTheirConflicts) {
  auto paused = call("PUT", "/vm/pause");
  EXPECT_EQ(paused.status, 200);
  EXPECT_EQ(paused.json(), (nlohmann::json{{"state", "paused"}}));
  EXPECT_EQ(vm_.state(), "paused");

  auto again = call("PUT", "/vm/pause");
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.json(), (nlohmann::json{{"error", "VM is not running"}}));

  auto resumed = call("PUT", "/vm/resume");
  EXPECT_EQ(resumed.status, 200);
  EXPECT_EQ(resumed.json()["state"], "running");
  EXPECT_EQ(call("PUT", "/vm/resume").status, 409);

  EXPECT_EQ(call("PUT", "/vm/shutdown").json()["state"], "shutdown");
  auto twice = call("PUT", "/vm/shutdown");
  EXPECT_EQ(twice.status, 409);
  EXPECT_EQ(twice.json()["error"], "VM is already shut down");
}

TEST_F(ApiVmRoutes, WrongMethodsOnVmRoutes) {
  auto get_pause = call("GET", "/vm/pause");
  EXPECT_EQ(get_pause.status, 405);
  EXPECT_EQ(get_pause.allow, "PUT");
  EXPECT_EQ(call("PUT", "/vm").allow, "GET");
  EXPECT_EQ(vm_.state(), "running");
}

TEST_F(ApiVmRoutes, MemoryReadReturnsTheExactBytes) {
  auto hex = call("GET", "/vm/memory?gpa=0x1234&len=4096");
  EXPECT_EQ(hex.status, 200);
  EXPECT_EQ(hex.content_type, "application/octet-stream");
  EXPECT_EQ(hex.body, vm_.bytes(0x1234, 4096));

  auto decimal = call("GET", "/vm/memory?gpa=10&len=1");
  EXPECT_EQ(decimal.body, vm_.bytes(10, 1));

  auto whole = call("GET", "/vm/memory?len=65536&gpa=0");
  EXPECT_EQ(whole.body, vm_.bytes(0, FakeVm::kMemoryBytes));
}

TEST_F(ApiVmRoutes, MemoryReadParameterErrorsAre400) {
  struct Case {
    std::string target;
    std::string message_part;
  };
  for (const Case& c : std::vector<Case>{
           {"/vm/memory", "missing query parameter 'gpa'"},
           {"/vm/memory?gpa=0", "missing query parameter 'len'"},
           {"/vm/memory?gpa=zz&len=1", "query parameter 'gpa': 'zz' is not a number"},
           {"/vm/memory?gpa=0&len=0x", "query parameter 'len'"},
           {"/vm/memory?gpa=0&len=0", "len 0 must be between 1 and 268435456"},
           {"/vm/memory?gpa=0&len=268435457", "must be between 1 and 268435456"},
           {"/vm/memory?gpa=0xffffffffffffffff&len=2", "overflows"},
           {"/vm/memory?gpa=0xfff0&len=0x20", "gpa 65520 len 32 is outside guest memory"},
       }) {
    auto reply = call("GET", c.target);
    EXPECT_EQ(reply.status, 400) << c.target;
    std::string error = reply.json().value("error", "");
    EXPECT_NE(error.find(c.message_part), std::string::npos) << c.target << " -> " << error;
  }
}

TEST_F(ApiVmRoutes, MemoryReadErrorCodesPickTheStatus) {
  vm_.fail_memory_with(EBUSY);
  EXPECT_EQ(call("GET", "/vm/memory?gpa=0&len=1").status, 409);
  vm_.fail_memory_with(EIO);
  auto io = call("GET", "/vm/memory?gpa=0&len=1");
  EXPECT_EQ(io.status, 500);
  EXPECT_EQ(io.json()["error"], "memory is unavailable");
}

}  // namespace
}  // namespace godwit::api
