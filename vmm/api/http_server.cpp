// HttpServer: listening socket, accept loop, server thread, orderly stop.
#include "vmm/api/http_server.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <exception>
#include <mutex>
#include <thread>

#include "base/log.h"
#include "vmm/api/http_session.h"
#include "vmm/api/unix_socket_path.h"

namespace godwit::api {

namespace asio = boost::asio;
using stream_protocol = asio::local::stream_protocol;
using boost::system::error_code;

struct HttpServer::Impl {
  Impl(std::string path_in, Router router_in, HttpServerOptions options_in)
      : path(std::move(path_in)), router(std::move(router_in)), options(options_in) {}

  void accept_next();
  void run_loop();

  std::string path;
  Router router;
  HttpServerOptions options;
  FileIdentity socket_file;
  // Declared before the io_context: sessions unregister from it while the io_context
  // destroys their pending handlers.
  SessionRegistry registry;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  stream_protocol::acceptor acceptor{io};
  asio::steady_timer accept_retry{io};
  std::thread thread;
  std::mutex stop_mutex;
  bool stopped = false;
};

void HttpServer::Impl::accept_next() {
  acceptor.async_accept([this](error_code ec, stream_protocol::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      // E.g. EMFILE: back off briefly instead of spinning on the error.
      log::warn("API socket " + path + ": accept: " + ec.message());
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](error_code wait_ec) {
        if (!wait_ec) accept_next();
      });
      return;
    }
    if (registry.sessions.size() >= options.max_connections) {
      log::warn("API socket " + path + ": connection limit of " +
                std::to_string(options.max_connections) + " reached; closing a new connection");
      error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<HttpSession>(std::move(socket), router, options, registry)->start();
    }
    accept_next();
  });
}

void HttpServer::Impl::run_loop() {
  for (;;) {
    try {
      io.run();
      return;  // stopped
    } catch (const std::exception& e) {
      // Handlers catch their own exceptions; this is a last line of defence (e.g. bad_alloc).
      log::error(std::string("API server: unexpected exception: ") + e.what());
    }
  }
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& socket_path, Router router,
                                                      HttpServerOptions options) {
  TRY_VOID(claim_socket_path(socket_path));
  auto impl = std::make_unique<Impl>(socket_path, std::move(router), options);
  error_code ec;
  impl->acceptor.open(stream_protocol(), ec);
  if (ec) return fail("API socket " + socket_path + ": socket: " + ec.message());
  impl->acceptor.bind(stream_protocol::endpoint(socket_path), ec);
  if (ec) return fail("API socket " + socket_path + ": bind: " + ec.message());
  impl->socket_file = TRY(file_identity(socket_path));
  impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    remove_socket_file_if_same(socket_path, impl->socket_file);
    return fail("API socket " + socket_path + ": listen: " + ec.message());
  }
  impl->accept_next();
  try {
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->run_loop(); });
  } catch (const std::system_error& e) {
    remove_socket_file_if_same(socket_path, impl->socket_file);
    return fail("API socket " + socket_path + ": starting the server thread: " + e.what());
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::stop() {
  if (!impl_) return;
  std::lock_guard lock(impl_->stop_mutex);
  if (impl_->stopped) return;
  if (std::this_thread::get_id() == impl_->thread.get_id()) {
    log::error("HttpServer::stop() called from an API handler; ignored (it would deadlock)");
    return;
  }
  impl_->stopped = true;
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  // The loop no longer runs: close everything from here so clients see EOF now.
  error_code ignored;
  impl_->acceptor.close(ignored);
  for (HttpSession* session : impl_->registry.sessions) session->close();
  remove_socket_file_if_same(impl_->path, impl_->socket_file);
}

const std::string& HttpServer::socket_path() const { return impl_->path; }

}  // namespace godwit::api
