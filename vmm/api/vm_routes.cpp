// The /vm routes: VM info, run-state changes and guest memory reads, mapped
// onto VmControl with the error mapping documented in vm_control.h.
#include <charconv>

#include "vmm/api/vm_control.h"

namespace godwit::api {

int http_status_for(const Error& error, int default_status) {
  switch (error.code) {
    case 0:
      return default_status;
    case EBUSY:
    case EALREADY:
      return 409;
    case EINVAL:
    case ERANGE:
    case EFAULT:
      return 400;
    case ENOSYS:
      return 501;
    default:
      return 500;
  }
}

namespace {

/// Runs a run-state change; answers 200 {"state": ...} or the mapped error.
Response change_state(VmControl& vm, Result<void> (VmControl::*action)()) {
  Result<void> done = (vm.*action)();
  if (!done) return Response::error(http_status_for(done.error(), 409), done.error().message);
  nlohmann::json info = vm.info();
  nlohmann::json state = info.is_object() && info.contains("state") ? info["state"] : "unknown";
  return Response::json(200, {{"state", state}});
}

/// Reads a required numeric query parameter.
Result<uint64_t> query_u64(const Request& request, const std::string& name) {
  auto it = request.query.find(name);
  if (it == request.query.end()) return fail("missing query parameter '" + name + "'");
  auto value = parse_u64(it->second);
  if (!value) return fail("query parameter '" + name + "': " + value.error().message);
  return *value;
}

Response read_memory(VmControl& vm, const Request& request) {
  auto gpa = query_u64(request, "gpa");
  if (!gpa) return Response::error(400, gpa.error().message);
  auto len = query_u64(request, "len");
  if (!len) return Response::error(400, len.error().message);
  if (*len == 0 || *len > kMaxMemoryReadBytes) {
    return Response::error(400, "len " + std::to_string(*len) + " must be between 1 and " +
                                    std::to_string(kMaxMemoryReadBytes) + " bytes");
  }
  if (*gpa + *len < *gpa) return Response::error(400, "gpa + len overflows 64 bits");
  auto bytes = vm.read_memory(*gpa, *len);
  if (!bytes) return Response::error(http_status_for(bytes.error(), 400), bytes.error().message);
  return Response::bytes(std::span<const uint8_t>(*bytes));
}

Response snapshot(VmControl& vm, const Request& request) {
  auto body = request.json();
  if (!body) return Response::error(400, body.error().message);
  auto report = vm.snapshot(*body);
  if (!report) return Response::error(http_status_for(report.error(), 500), report.error().message);
  return Response::json(200, *report);
}

}  // namespace

void register_vm_routes(Router& router, VmControl& vm) {
  router.get("/vm", [&vm](const Request&) { return Response::json(200, vm.info()); });
  router.put("/vm/pause", [&vm](const Request&) { return change_state(vm, &VmControl::pause); });
  router.put("/vm/resume", [&vm](const Request&) { return change_state(vm, &VmControl::resume); });
  router.put("/vm/shutdown",
             [&vm](const Request&) { return change_state(vm, &VmControl::shutdown); });
  router.get("/vm/memory", [&vm](const Request& r) { return read_memory(vm, r); });
  router.put("/vm/snapshot", [&vm](const Request& r) { return snapshot(vm, r); });
}

}  // namespace godwit::api
