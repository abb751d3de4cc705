// Command-line parsing and validation for godwit.
#include "vmm/config.h"

#include <boost/program_options.hpp>
#include <cctype>
#include <charconv>
#include <sstream>

#include "devices/virtio/net.h"

namespace godwit {
namespace po = boost::program_options;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

Result<uint64_t> parse_size(const std::string& text) {
  uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == begin)
    return fail("invalid size '" + text + "': expected e.g. 512M or 1G");
  std::string suffix = lower(std::string(ptr, end));
  uint64_t mult = 1;
  if (suffix.empty() || suffix == "b") {
    mult = 1;
  } else if (suffix == "k" || suffix == "kib" || suffix == "kb") {
    mult = 1024;
  } else if (suffix == "m" || suffix == "mib" || suffix == "mb") {
    mult = kMiB;
  } else if (suffix == "g" || suffix == "gib" || suffix == "gb") {
    mult = kGiB;
  } else if (suffix == "t" || suffix == "tib" || suffix == "tb") {
    mult = 1024 * kGiB;
  } else {
    return fail("invalid size '" + text + "': unknown suffix '" + suffix + "' (use K, M, G or T)");
  }
  if (value != 0 && mult > UINT64_MAX / value)
    return fail("invalid size '" + text + "': too large");
  return value * mult;
}

Result<SerialConfig> parse_serial(const std::string& text) {
  SerialConfig s;
  if (text == "stdout") {
    s.kind = SerialConfig::Kind::stdout_;
  } else if (text == "none" || text == "off") {
    s.kind = SerialConfig::Kind::none;
  } else if (text.starts_with("file:") && text.size() > 5) {
    s.kind = SerialConfig::Kind::file;
    s.path = text.substr(5);
  } else if (text.starts_with("unix:") && text.size() > 5) {
    s.kind = SerialConfig::Kind::unix_socket;
    s.path = text.substr(5);
  } else {
    return fail("invalid --serial '" + text + "': expected stdout, none, file:PATH or unix:PATH");
  }
  return s;
}

namespace {

/// Splits "k=v,k=v" into pairs; an item without '=' gets the key "" (a bare value).
Result<std::vector<std::pair<std::string, std::string>>> split_key_values(const std::string& option,
                                                                          const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    if (item.empty()) return fail("invalid " + option + " '" + text + "': empty item");
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      out.emplace_back("", item);
    } else {
      if (eq == 0 || eq + 1 == item.size())
        return fail("invalid " + option + " '" + text + "': '" + item + "' is not KEY=VALUE");
      out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    }
  }
  if (out.empty()) return fail("invalid " + option + " '': empty");
  return out;
}

/// "on"/"off" (also true/false, yes/no, 1/0).
Result<bool> parse_switch(const std::string& option, const std::string& key,
                          const std::string& value) {
  std::string v = lower(value);
  if (v == "on" || v == "true" || v == "yes" || v == "1") return true;
  if (v == "off" || v == "false" || v == "no" || v == "0") return false;
  return fail("invalid " + option + " " + key + "='" + value + "': expected on or off");
}

}  // namespace

Result<DiskConfig> parse_disk(const std::string& text) {
  DiskConfig d;
  for (const auto& [key, value] : TRY(split_key_values("--disk", text))) {
    if (key.empty() || key == "path") {
      if (!d.path.empty()) return fail("invalid --disk '" + text + "': path given twice");
      d.path = value;
    } else if (key == "readonly" || key == "ro") {
      d.readonly = TRY(parse_switch("--disk", key, value));
    } else if (key == "direct") {
      d.direct = TRY(parse_switch("--disk", key, value));
    } else if (key == "serial") {
      if (value.size() > 20)
        return fail("invalid --disk serial '" + value + "': at most 20 bytes (virtio-blk get-id)");
      d.serial = value;
    } else {
      return fail("invalid --disk '" + text + "': unknown key '" + key +
                  "' (path, readonly, direct, serial)");
    }
  }
  if (d.path.empty()) return fail("invalid --disk '" + text + "': path=FILE is required");
  return d;
}

Result<NetConfig> parse_net(const std::string& text) {
  NetConfig n;
  for (const auto& [key, value] : TRY(split_key_values("--net", text))) {
    if (key == "tap") {
      if (value.size() >= 16)
        return fail("invalid --net tap '" + value + "': interface names have at most 15 bytes");
      n.tap = value;
    } else if (key == "mac") {
      auto mac = virtio::parse_mac(value);
      if (!mac) return fail(mac.error().context("invalid --net mac"));
      n.mac = value;
    } else {
      return fail("invalid --net '" + text + "': unknown key '" + (key.empty() ? value : key) +
                  "' (tap, mac)");
    }
  }
  if (n.tap.empty()) return fail("invalid --net '" + text + "': tap=NAME is required");
  return n;
}

namespace {

po::options_description make_options() {
  po::options_description opts(
      "Usage: godwit [OPTIONS] (--kernel FILE | --image FILE[,...] | --restore DIR |\n"
      "                         --incoming tcp:HOST:PORT|unix:PATH)\n\n"
      "godwit: a lightweight KVM virtual machine monitor.\n\nOptions");
  // clang-format off
  opts.add_options()
    ("help,h", "print this help and exit")
    ("version", "print the version and exit")
    ("memory,m", po::value<std::string>()->default_value("512M"),
     "guest RAM size (e.g. 512M, 1G); above 3 GiB the rest is mapped at 4 GiB")
    ("memory-backing", po::value<std::string>()->default_value("memfd"),
     "guest RAM backing: memfd, anonymous or hugetlbfs:DIR")
    ("vcpus", po::value<uint32_t>()->default_value(1), "number of vCPUs (1-254)")
    ("api-sock", po::value<std::string>(), "serve the REST API on this unix socket path")
    ("serial", po::value<std::string>()->default_value("stdout"),
     "serial console: stdout, none, file:PATH or unix:PATH (godwit listens)")
    ("kernel", po::value<std::string>(), "boot a Linux bzImage or an ELF kernel (PVH or 64-bit entry)")
    ("initrd", po::value<std::string>(), "initial ramdisk for --kernel")
    ("cmdline", po::value<std::string>()->default_value("console=ttyS0"), "kernel command line for --kernel")
    ("image", po::value<std::string>(),
     "boot a raw image: FILE[,load=ADDR][,entry=ADDR][,mode=real|protected|long]; "
     "defaults load=entry=0x7c00, mode=real (a boot sector)")
    ("guest-param", po::value<std::vector<std::string>>()->composing(),
     "patch a test-guest parameter: NAME.KEY=VALUE[,NAME.KEY=VALUE...] (repeatable)")
    ("disk", po::value<std::vector<std::string>>()->composing(),
     "virtio-blk disk: path=FILE[,readonly=on][,direct=on][,serial=ID] (repeatable; raw "
     "image, size a multiple of 512 bytes)")
    ("net", po::value<std::vector<std::string>>()->composing(),
     "virtio-net device on a tap interface: tap=NAME[,mac=XX:XX:XX:XX:XX:XX] (repeatable)")
    ("rng", "add a virtio-rng device fed from getrandom()")
    ("restore", po::value<std::string>(),
     "restore the VM saved in this snapshot directory (godwitctl snapshot create) and resume "
     "it; memory, vCPUs, devices and boot come from the snapshot")
    ("restore-memory", po::value<std::string>()->default_value("eager"),
     "with --restore: eager (read all guest memory before resuming) or lazy (resume at once, "
     "fill pages on first touch through userfaultfd while a prefetcher reads the rest)")
    ("paused", "with --restore: leave the restored VM paused (PUT /vm/resume starts it)")
    ("incoming", po::value<std::string>(),
     "receive the VM from a live migration (godwitctl migrate on the source) on tcp:HOST:PORT "
     "or unix:PATH; give the same --memory, --vcpus and device options as the source "
     "(--kernel / --image are not needed and never loaded); the guest starts when the "
     "migration completes, godwit exits 1 if it fails")
    ("virtio-discovery", po::value<std::string>()->default_value("dtb"),
     "how a --kernel guest finds the virtio devices: dtb (device tree as SETUP_DTB setup "
     "data; kernels with CONFIG_OF) or cmdline (virtio_mmio.device= on the command line; "
     "kernels with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES). PVH boots always use cmdline");
  // clang-format on
  return opts;
}

Result<void> split_params(const std::string& text, std::vector<std::string>& out) {
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    auto dot = item.find('.');
    auto eq = item.find('=');
    if (dot == std::string::npos || eq == std::string::npos || dot > eq || dot == 0 ||
        eq == dot + 1 || eq + 1 == item.size())
      return fail("invalid --guest-param '" + item + "': expected NAME.KEY=VALUE");
    out.push_back(item);
  }
  return {};
}

/// --restore DIR: every option that describes the VM itself is refused
/// (the snapshot fixes it); the console, API socket and memory mode are free.
Result<ParsedCommandLine> parse_restore(const po::variables_map& vm, ParsedCommandLine out) {
  for (const char* fixed : {"memory", "memory-backing", "vcpus", "kernel", "initrd", "cmdline",
                            "image", "guest-param", "disk", "net", "rng", "virtio-discovery"}) {
    if (vm.count(fixed) && !vm[fixed].defaulted())
      return fail(std::string("--") + fixed +
                  " cannot be combined with --restore: the snapshot defines the VM");
  }
  RestoreRequest r;
  r.dir = vm["restore"].as<std::string>();
  if (r.dir.empty()) return fail("--restore: empty directory name");
  const std::string mode = vm["restore-memory"].as<std::string>();
  if (mode == "eager") {
    r.memory = RestoreMemory::eager;
  } else if (mode == "lazy") {
    r.memory = RestoreMemory::lazy;
  } else {
    return fail("invalid --restore-memory '" + mode + "': expected eager or lazy");
  }
  r.paused = vm.count("paused") > 0;
  if (vm.count("api-sock")) r.api_sock = vm["api-sock"].as<std::string>();
  r.serial = TRY(parse_serial(vm["serial"].as<std::string>()));
  out.restore = std::move(r);
  return out;
}

}  // namespace

Result<void> check_incoming_address(const std::string& text) {
  const std::string usage =
      "invalid --incoming '" + text + "': expected tcp:HOST:PORT or unix:PATH";
  if (text.starts_with("unix:")) {
    const std::string path = text.substr(5);
    if (path.empty()) return fail(usage + " (empty path)");
    if (path.size() > 107) return fail(usage + " (the path is longer than 107 bytes)");
    return {};
  }
  if (!text.starts_with("tcp:")) return fail(usage);
  const std::string rest = text.substr(4);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) return fail(usage + " (no port)");
  const std::string host = rest.substr(0, colon);
  const std::string port = rest.substr(colon + 1);
  if (host.empty() || host == "[]") return fail(usage + " (empty host)");
  if (host.find(':') != std::string::npos && !(host.front() == '[' && host.back() == ']'))
    return fail(usage + " (write an IPv6 host as [ADDRESS])");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return fail(usage + " (port '" + port + "' is not 0..65535)");
  return {};
}

Result<ParsedCommandLine> parse_command_line(int argc, const char* const* argv) {
  po::options_description opts = make_options();
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return fail(std::string(e.what()) + " (see godwit --help)");
  }
  ParsedCommandLine out;
  if (vm.count("help")) {
    std::ostringstream text;
    text
        << opts << "\nExamples:\n"
        << "  godwit --image build/guests/selfcheck.img --vcpus 2 --memory 512M\n"
        << "  godwit --image build/guests/selfcheck.img --vcpus 2 --disk path=disk.img --rng\n"
        << "  godwit --kernel bzImage --cmdline 'console=ttyS0' --api-sock /tmp/godwit.sock\n"
        << "  godwit --restore /var/tmp/snap1 --restore-memory lazy --api-sock /tmp/godwit.sock\n"
        << "  godwit --incoming tcp:0.0.0.0:4444 --vcpus 2 --memory 512M --api-sock /tmp/dst.sock\n"
        << "\nLive migration: the source's API takes PUT /migration/send (godwitctl migrate\n"
        << "URI --wait); after a completed migration the source VM stays paused: stop it\n"
        << "with godwitctl shutdown.\n"
        << "\nLinux kernels need a host whose KVM uses VMX or SVM; on PVM hosts only the\n"
        << "project's own test guests run (see README).\n";
    out.message = text.str();
    return out;
  }
  if (vm.count("version")) {
    out.message = std::string("godwit ") + kGodwitVersion + "\n";
    return out;
  }

  if (vm.count("restore") && vm.count("incoming"))
    return fail(
        "--incoming cannot be combined with --restore: the VM comes either from a snapshot or "
        "from a migration");
  if (vm.count("restore")) return parse_restore(vm, std::move(out));
  if (vm.count("incoming")) {
    out.incoming = vm["incoming"].as<std::string>();
    TRY_VOID(check_incoming_address(out.incoming));
  }
  const bool incoming = !out.incoming.empty();
  if (vm.count("paused")) return fail("--paused needs --restore");
  if (!vm["restore-memory"].defaulted()) return fail("--restore-memory needs --restore");

  VmConfig c;
  auto memory_size = parse_size(vm["memory"].as<std::string>());
  if (!memory_size) return fail(memory_size.error().context("--memory"));
  c.memory_size = *memory_size;
  if (c.memory_size == 0) return fail("--memory: size must be greater than 0");
  if (c.memory_size % kPageSize != 0) return fail("--memory: size must be a multiple of 4 KiB");
  if (c.memory_size < 2 * kMiB) return fail("--memory: at least 2 MiB is needed");

  std::string backing = vm["memory-backing"].as<std::string>();
  if (backing == "memfd") {
    c.backing = MemoryBacking::memfd;
  } else if (backing == "anonymous") {
    c.backing = MemoryBacking::anonymous;
  } else if (backing.starts_with("hugetlbfs:") && backing.size() > 10) {
    c.backing = MemoryBacking::hugetlbfs;
    c.hugetlbfs_dir = backing.substr(10);
  } else {
    return fail("invalid --memory-backing '" + backing +
                "': expected memfd, anonymous or hugetlbfs:DIR");
  }

  c.vcpus = vm["vcpus"].as<uint32_t>();
  if (c.vcpus == 0 || c.vcpus > kMaxVcpus)
    return fail("--vcpus: must be between 1 and " + std::to_string(kMaxVcpus) + ", got " +
                std::to_string(c.vcpus));

  if (vm.count("api-sock")) c.api_sock = vm["api-sock"].as<std::string>();
  c.serial = TRY(parse_serial(vm["serial"].as<std::string>()));

  bool has_kernel = vm.count("kernel") > 0;
  bool has_image = vm.count("image") > 0;
  if (has_kernel && has_image)
    return fail(
        "exactly one boot source is needed: --kernel FILE or --image FILE (see godwit --help)");
  if (!has_kernel && !has_image && !incoming)
    return fail(
        "exactly one boot source is needed: --kernel FILE or --image FILE (see godwit --help)");
  if (!has_kernel && !has_image) {
    // --incoming: nothing is loaded; guest memory and state come from the source.
    if (vm.count("initrd")) return fail("--initrd needs --kernel");
    c.boot = ImageBoot{};
  } else if (has_kernel) {
    KernelBoot k;
    k.kernel = vm["kernel"].as<std::string>();
    if (vm.count("initrd")) k.initrd = vm["initrd"].as<std::string>();
    k.cmdline = vm["cmdline"].as<std::string>();
    c.boot = k;
  } else {
    if (vm.count("initrd")) return fail("--initrd needs --kernel");
    c.boot = ImageBoot{vm["image"].as<std::string>()};
  }
  if (vm.count("guest-param")) {
    for (const auto& p : vm["guest-param"].as<std::vector<std::string>>())
      TRY_VOID(split_params(p, c.guest_params));
  }
  if (vm.count("disk")) {
    for (const auto& d : vm["disk"].as<std::vector<std::string>>())
      c.disks.push_back(TRY(parse_disk(d)));
  }
  if (vm.count("net")) {
    for (const auto& n : vm["net"].as<std::vector<std::string>>())
      c.nets.push_back(TRY(parse_net(n)));
  }
  c.rng = vm.count("rng") > 0;
  const std::string discovery = vm["virtio-discovery"].as<std::string>();
  if (discovery == "dtb") {
    c.virtio_discovery = VirtioDiscovery::dtb;
  } else if (discovery == "cmdline") {
    c.virtio_discovery = VirtioDiscovery::cmdline;
  } else {
    return fail("invalid --virtio-discovery '" + discovery + "': expected dtb or cmdline");
  }
  out.config = std::move(c);
  return out;
}

}  // namespace godwit
