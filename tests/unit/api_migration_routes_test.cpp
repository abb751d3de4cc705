// The /migration routes (vmm/api/migration_routes.h) with a fake
// MigrationControl: send passes its JSON body through and answers 202 with
// the status, status is 200, cancel is 202; errors are {"error": ...} with
// the status picked by errno (plain -> 409, EINVAL 400, ENOSYS 501, other
// 500); a send body that is not JSON is a 400 the VMM never sees; wrong
// methods are 405 with Allow. One test goes through a real HttpServer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>
#include <optional>

#include "api_test_support.h"
#include "vmm/api/http_server.h"
#include "vmm/api/migration_routes.h"
#include "vmm/api/vm_control.h"

namespace godwit {
namespace {

using ::testing::HasSubstr;

/// Records start() requests and cancel() calls; answers with a scripted
/// status or error.
class FakeMigration : public api::MigrationControl {
 public:
  Result<nlohmann::json> start(const nlohmann::json& request) override {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
    if (start_error_) return std::unexpected(*start_error_);
    status_ = {{"state", "setup"}, {"role", "source"}, {"uri", request.value("uri", "")}};
    return status_;
  }
  nlohmann::json status() override {
    std::lock_guard lock(mutex_);
    return status_;
  }
  Result<nlohmann::json> cancel() override {
    std::lock_guard lock(mutex_);
    ++cancels_;
    if (cancel_error_) return std::unexpected(*cancel_error_);
    status_["state"] = "cancelling";
    return status_;
  }

  void refuse_start(std::string message, int code) {
    std::lock_guard lock(mutex_);
    start_error_ = Error{std::move(message), code};
  }
  void refuse_cancel(std::string message, int code) {
    std::lock_guard lock(mutex_);
    cancel_error_ = Error{std::move(message), code};
  }
  void set_status(nlohmann::json status) {
    std::lock_guard lock(mutex_);
    status_ = std::move(status);
  }
  std::vector<nlohmann::json> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  int cancels() {
    std::lock_guard lock(mutex_);
    return cancels_;
  }

 private:
  std::mutex mutex_;
  std::vector<nlohmann::json> requests_;
  std::optional<Error> start_error_;
  std::optional<Error> cancel_error_;
  nlohmann::json status_ = {{"state", "none"}, {"role", "none"}};
  int cancels_ = 0;
};

api::Request request(std::string method, std::string path, std::string body = {}) {
  return api::Request{
      .method = std::move(method), .path = std::move(path), .query = {}, .body = std::move(body)};
}

class ApiMigrationRoutes : public ::testing::Test {
 protected:
  void SetUp() override { api::register_migration_routes(router_, migration_); }
  api::Response call(std::string method, std::string path, std::string body = {}) {
    return router_.dispatch(request(std::move(method), std::move(path), std::move(body)));
  }

  FakeMigration migration_;
  api::Router router_;
};

TEST_F(ApiMigrationRoutes, SendPassesTheBodyAndAnswers202WithTheStatus) {
  const nlohmann::json body = {{"uri", "tcp:10.0.0.2:4444"}, {"downtime_limit_ms", 100}};
  auto r = call("PUT", "/migration/send", body.dump());
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body,
            (nlohmann::json{{"state", "setup"}, {"role", "source"}, {"uri", "tcp:10.0.0.2:4444"}}));
  ASSERT_EQ(migration_.requests().size(), 1u);
  EXPECT_EQ(migration_.requests()[0], body);
  // The route does not judge members: that is parse_send_request in the VMM.
  EXPECT_EQ(call("PUT", "/migration/send", R"({"other": [1]})").status, 202);
  EXPECT_EQ(migration_.requests()[1], (nlohmann::json{{"other", {1}}}));
}

TEST_F(ApiMigrationRoutes, ABodyThatIsNotJsonIs400AndNeverReachesTheVmm) {
  for (const std::string body : {"", "{", "uri=tcp:h:1"}) {
    auto r = call("PUT", "/migration/send", body);
    EXPECT_EQ(r.status, 400) << body;
    ASSERT_TRUE(r.body.contains("error")) << body;
    EXPECT_TRUE(r.body["error"].is_string());
  }
  EXPECT_THAT(call("PUT", "/migration/send", "").body["error"].get<std::string>(),
              HasSubstr("request body is empty"));
  EXPECT_TRUE(migration_.requests().empty());
}

TEST_F(ApiMigrationRoutes, SendErrorsMapByErrno) {
  struct Case {
    int code;
    int status;
  };
  for (const Case c : {Case{0, 409}, Case{EBUSY, 409}, Case{EALREADY, 409}, Case{EINVAL, 400},
                       Case{ERANGE, 400}, Case{ENOSYS, 501}, Case{EIO, 500}}) {
    migration_.refuse_start("refused with " + std::to_string(c.code), c.code);
    auto r = call("PUT", "/migration/send", R"({"uri": "tcp:h:1"})");
    EXPECT_EQ(r.status, c.status) << "errno " << c.code;
    EXPECT_EQ(r.body, (nlohmann::json{{"error", "refused with " + std::to_string(c.code)}}));
  }
}

TEST_F(ApiMigrationRoutes, StatusIs200WithTheDocument) {
  const nlohmann::json status = {{"state", "active"},
                                 {"transferred_bytes", 1024},
                                 {"remaining_bytes", 4096},
                                 {"downtime", {{"final_sync_ms", 1.5}}}};
  migration_.set_status(status);
  auto r = call("GET", "/migration/status");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, status);
}

TEST_F(ApiMigrationRoutes, CancelIs202WithTheStatusOr409) {
  migration_.set_status({{"state", "active"}});
  auto r = call("PUT", "/migration/cancel");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, (nlohmann::json{{"state", "cancelling"}}));
  EXPECT_EQ(migration_.cancels(), 1);

  // R8: refused in postcopy; a plain fail is the route's default 409.
  migration_.refuse_cancel("cannot cancel: postcopy migration in progress", 0);
  auto refused = call("PUT", "/migration/cancel");
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(refused.body,
            (nlohmann::json{{"error", "cannot cancel: postcopy migration in progress"}}));
  migration_.refuse_cancel("cancel is not supported", ENOSYS);
  EXPECT_EQ(call("PUT", "/migration/cancel").status, 501);
}

TEST_F(ApiMigrationRoutes, WrongMethodsAre405WithAllow) {
  struct Case {
    const char* method;
    const char* path;
    const char* allow;
  };
  for (const Case c :
       {Case{"GET", "/migration/send", "PUT"}, Case{"POST", "/migration/send", "PUT"},
        Case{"PUT", "/migration/status", "GET"}, Case{"DELETE", "/migration/status", "GET"},
        Case{"GET", "/migration/cancel", "PUT"}}) {
    auto r = call(c.method, c.path);
    EXPECT_EQ(r.status, 405) << c.method << " " << c.path;
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"Allow", c.allow}));
    EXPECT_TRUE(r.body["error"].is_string());
  }
  EXPECT_EQ(call("GET", "/migration").status, 404);
  EXPECT_TRUE(migration_.requests().empty());
  EXPECT_EQ(migration_.cancels(), 0);
}

TEST(ApiMigrationRoutesServer, OverTheSocket) {
  FakeMigration migration;
  test::FakeVm vm;
  api::Router router;
  api::register_vm_routes(router, vm);
  api::register_migration_routes(router, migration);
  test::TempSocketPath sock;
  auto server = api::HttpServer::start(sock.path(), std::move(router));
  ASSERT_TRUE(server.has_value()) << server.error().message;

  auto sent = test::http_request(sock.path(), "PUT", "/migration/send", R"({"uri": "unix:/m"})");
  EXPECT_EQ(sent.status, 202);
  EXPECT_EQ(sent.content_type, "application/json");
  EXPECT_EQ(sent.json()["uri"], "unix:/m");
  auto status = test::http_request(sock.path(), "GET", "/migration/status");
  EXPECT_EQ(status.status, 200);
  EXPECT_EQ(status.json()["state"], "setup");
  migration.refuse_cancel("nothing to cancel", 0);
  auto cancel = test::http_request(sock.path(), "PUT", "/migration/cancel");
  EXPECT_EQ(cancel.status, 409);
  EXPECT_EQ(cancel.json(), (nlohmann::json{{"error", "nothing to cancel"}}));
  // The /vm routes still answer beside them.
  EXPECT_EQ(test::http_request(sock.path(), "GET", "/vm").status, 200);
}

}  // namespace
}  // namespace godwit
