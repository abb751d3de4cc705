// Request/Response helpers: JSON body parsing, response constructors, query
// string decoding.
#include "vmm/api/http_message.h"

namespace godwit::api {

Result<nlohmann::json> Request::json() const {
  if (body.empty()) return fail("request body is empty; expected a JSON document");
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("malformed JSON body: ") + e.what());
  }
}

Response Response::json(int status, nlohmann::json body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::error(int status, std::string message) {
  return json(status, nlohmann::json{{"error", std::move(message)}});
}

Response Response::bytes(std::string data, std::string content_type) {
  Response r;
  r.status = 200;
  r.raw = std::move(data);
  r.content_type = std::move(content_type);
  return r;
}

Response Response::bytes(std::span<const uint8_t> data, std::string content_type) {
  return bytes(std::string(reinterpret_cast<const char*>(data.data()), data.size()),
               std::move(content_type));
}

Response Response::no_content() {
  Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

std::string Response::serialized_body() const {
  if (status == 204 || status == 304 || (status >= 100 && status < 200)) return {};
  if (content_type == "application/json") {
    // Never throw on invalid UTF-8 in a message: replace bad bytes.
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return raw;
}

std::string Response::take_body() && {
  if (content_type == "application/json" || status == 204 || status == 304 || status < 200) {
    return serialized_body();
  }
  return std::move(raw);
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
               hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string key = percent_decode(item.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : percent_decode(item.substr(eq + 1));
    out[std::move(key)] = std::move(value);
  }
  return out;
}

}  // namespace godwit::api
