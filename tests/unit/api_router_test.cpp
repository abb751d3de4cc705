// Router and message helpers without a socket: dispatch, 404/405/500, query
// decoding, JSON body errors, number parsing and the VmControl error mapping.
#include <gtest/gtest.h>

#include <stdexcept>

#include "vmm/api/router.h"
#include "vmm/api/vm_control.h"

namespace godwit::api {
namespace {

Request make_request(std::string method, std::string path, std::string body = "") {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.body = std::move(body);
  return r;
}

TEST(ApiRouter, DispatchesByMethodAndExactPath) {
  Router router;
  router.get("/vm", [](const Request&) { return Response::json(200, {{"which", "get"}}); });
  router.put("/vm", [](const Request&) { return Response::json(200, {{"which", "put"}}); });
  EXPECT_EQ(router.dispatch(make_request("GET", "/vm")).body["which"], "get");
  EXPECT_EQ(router.dispatch(make_request("PUT", "/vm")).body["which"], "put");
  // Exact paths only: no prefix or trailing-slash matching.
  EXPECT_EQ(router.dispatch(make_request("GET", "/vm/")).status, 404);
  EXPECT_EQ(router.dispatch(make_request("GET", "/v")).status, 404);
}

TEST(ApiRouter, UnknownPathIs404NamingThePath) {
  Router router;
  Response r = router.dispatch(make_request("GET", "/nope"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, (nlohmann::json{{"error", "unknown path /nope"}}));
}

TEST(ApiRouter, WrongMethodIs405WithAllowHeader) {
  Router router;
  router.get("/vm", [](const Request&) { return Response::json(200, {}); });
  router.put("/vm", [](const Request&) { return Response::json(200, {}); });
  Response r = router.dispatch(make_request("DELETE", "/vm"));
  EXPECT_EQ(r.status, 405);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Allow");
  EXPECT_EQ(r.headers[0].second, "GET, PUT");
  EXPECT_NE(r.body["error"].get<std::string>().find("DELETE"), std::string::npos);
}

TEST(ApiRouter, ThrowingHandlerBecomes500WithTheMessage) {
  Router router;
  router.post("/boom", [](const Request&) -> Response { throw std::runtime_error("kaboom"); });
  router.post("/int", [](const Request&) -> Response { throw 42; });
  Response r = router.dispatch(make_request("POST", "/boom"));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body["error"], "internal error in POST /boom: kaboom");
  EXPECT_EQ(router.dispatch(make_request("POST", "/int")).status, 500);
}

TEST(ApiMessage, JsonBodyErrorsNameTheProblem) {
  auto good = make_request("PUT", "/x", R"({"a": 1})").json();
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ((*good)["a"], 1);

  auto bad = make_request("PUT", "/x", "{\"a\": ").json();
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("malformed JSON body"), std::string::npos);
  EXPECT_NE(bad.error().message.find("parse error"), std::string::npos);

  auto empty = make_request("PUT", "/x").json();
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().message.find("empty"), std::string::npos);
}

TEST(ApiMessage, ResponseHelpers) {
  Response e = Response::error(409, "VM is not running");
  EXPECT_EQ(e.status, 409);
  EXPECT_EQ(e.serialized_body(), R"({"error":"VM is not running"})");

  std::vector<uint8_t> data{0, 1, 2, 0xff};
  Response b = Response::bytes(std::span<const uint8_t>(data));
  EXPECT_EQ(b.content_type, "application/octet-stream");
  EXPECT_EQ(b.serialized_body(), std::string("\x00\x01\x02\xff", 4));

  EXPECT_EQ(Response::no_content().status, 204);
  EXPECT_EQ(Response::no_content().serialized_body(), "");
}

TEST(ApiMessage, QueryStringIsSplitAndDecoded) {
  auto q = parse_query("gpa=0x1000&len=16&name=a%20b+c&flag&&bad=%zz");
  EXPECT_EQ(q["gpa"], "0x1000");
  EXPECT_EQ(q["len"], "16");
  EXPECT_EQ(q["name"], "a b c");
  EXPECT_EQ(q["flag"], "");
  EXPECT_EQ(q["bad"], "%zz");
  EXPECT_EQ(q.size(), 5u);
}

TEST(ApiVmControl, ParsesDecimalAndHexNumbers) {
  EXPECT_EQ(parse_u64("4096").value(), 4096u);
  EXPECT_EQ(parse_u64("0x1000").value(), 4096u);
  EXPECT_EQ(parse_u64("0XfF").value(), 255u);
  EXPECT_EQ(parse_u64("18446744073709551615").value(), UINT64_MAX);
  EXPECT_FALSE(parse_u64("").has_value());
  EXPECT_FALSE(parse_u64("0x").has_value());
  EXPECT_FALSE(parse_u64("12abc").has_value());
  EXPECT_FALSE(parse_u64("-1").has_value());
  EXPECT_FALSE(parse_u64(" 1").has_value());
  auto too_big = parse_u64("18446744073709551616");
  ASSERT_FALSE(too_big.has_value());
  EXPECT_NE(too_big.error().message.find("64 bits"), std::string::npos);
}

TEST(ApiVmControl, ErrorCodesMapToHttpStatuses) {
  EXPECT_EQ(http_status_for(Error{"x", 0}, 409), 409);
  EXPECT_EQ(http_status_for(Error{"x", 0}, 400), 400);
  EXPECT_EQ(http_status_for(vm_conflict("x").error(), 400), 409);
  EXPECT_EQ(http_status_for(vm_bad_request("x").error(), 409), 400);
  EXPECT_EQ(http_status_for(Error{"x", EIO}, 400), 500);
}

}  // namespace
}  // namespace godwit::api
