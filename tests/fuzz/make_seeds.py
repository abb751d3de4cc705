#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora, one directory per target:
tests/fuzz/corpus/virtqueue/*.bin: a few well-formed rings (plain,
multi-descriptor, indirect, wrap-around, event index) and a few malformed
ones, in the input layout documented at the top of virtqueue_fuzzer.cpp;
tests/fuzz/corpus/migration/*.bin: well-formed migration messages (SETUP and
the other frames, a hello, multifd packet streams with and without zstd, a
RAM section, a load_pages call, a main-channel stream) in the layout at the top of
migration_fuzzer.cpp. Re-run after changing either layout. Needs the zstd
command for the compressed multifd packet."""
import os
import struct
import subprocess
import tempfile

DESC, AVAIL, USED, TABLE, DATA = 0x100, 0x300, 0x400, 0x600, 0x800
NEXT, WRITE, INDIRECT = 1, 2, 4


class Image:
    def __init__(self, log2_size, flags, start_idx=0, write_units=4):
        self.size = 1 << log2_size
        self.header = struct.pack("<BBHHHHB", log2_size, flags, start_idx, DESC, AVAIL, USED,
                                  write_units)
        self.mem = bytearray(0x900)
        self.avail_idx = start_idx

    def desc(self, i, addr, length, flags, nxt=0, table=DESC):
        struct.pack_into("<QIHH", self.mem, table + 16 * i, addr, length, flags, nxt)

    def publish(self, head):
        struct.pack_into("<H", self.mem, AVAIL + 4 + 2 * (self.avail_idx % self.size), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        struct.pack_into("<H", self.mem, AVAIL + 2, self.avail_idx)

    def bytes(self):
        return self.header + bytes(self.mem)


def seeds():
    s = Image(4, 0)
    s.desc(0, DATA, 64, 0)
    s.publish(0)
    yield "single", s

    m = Image(4, 1)  # EVENT_IDX
    m.desc(0, DATA, 16, NEXT, 1)
    m.desc(1, DATA + 0x10, 16, NEXT | WRITE, 2)
    m.desc(2, DATA + 0x20, 32, WRITE)
    m.desc(5, DATA + 0x40, 8, 0)
    m.publish(0)
    m.publish(5)
    yield "multi_event_idx", m

    n = Image(3, 2)  # INDIRECT_DESC
    n.desc(0, TABLE, 3 * 16, INDIRECT)
    n.desc(0, DATA, 16, NEXT, 1, TABLE)
    n.desc(1, DATA + 0x10, 16, NEXT | WRITE, 2, TABLE)
    n.desc(2, DATA + 0x20, 16, WRITE, 0, TABLE)
    n.desc(1, DATA + 0x80, 4, NEXT, 2)
    n.desc(2, TABLE + 0x80, 16, INDIRECT)
    n.desc(0, DATA + 0x90, 8, WRITE, 0, TABLE + 0x80)
    n.publish(0)
    n.publish(1)
    yield "indirect", n

    w = Image(2, 1 | 4, start_idx=0xFFFE)  # restore() path, wraps past 65535
    for i in range(4):
        w.desc(i, DATA + 0x20 * i, 0x20, WRITE)
        w.publish(i)
    yield "wrap_restore", w

    pages = Image(3, 0, write_units=255)  # 4080 bytes across page boundaries
    pages.desc(0, DATA, 8, NEXT, 1)
    pages.desc(1, 0x1F00, 0x300, NEXT | WRITE, 2)
    pages.desc(2, 0x3F80, 0x1000, WRITE)
    pages.publish(0)
    yield "page_crossing", pages

    loop = Image(3, 0)
    loop.desc(0, DATA, 4, NEXT, 1)
    loop.desc(1, DATA, 4, NEXT, 0)
    loop.publish(0)
    yield "loop", loop

    nested = Image(3, 2)
    nested.desc(0, TABLE, 16, INDIRECT)
    nested.desc(0, TABLE + 0x40, 16, INDIRECT, 0, TABLE)
    nested.publish(0)
    yield "nested_indirect", nested


# --- migration (layouts: migration/wire.h, multifd_packet.h, ram_migratable.h)


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

PAGE = 4096
SETUP, SECTION, PING, COMPLETE, GO = 0x0001, 0x0002, 0x0003, 0x0005, 0x0006
SETUP_ACCEPT, PONG, SWITCHOVER_ACK, ERROR, LOADED = 0x0101, 0x0102, 0x0103, 0x0104, 0x0105


def string(text):
    raw = text.encode()
    return struct.pack("<I", len(raw)) + raw


def key(kind, instance):
    return string(kind) + struct.pack("<I", instance)


def page(seed):
    """A compressible page that differs per seed."""
    return bytes((seed + i // 64) & 0xFF for i in range(PAGE))


def setup_payload():
    """SETUP asking for switchover-ack and 2 zstd multifd channels, for the
    same VM as destination_vm() in migration_fuzzer.cpp."""
    vm = struct.pack("<IQQ", 1, 0, 1 << 20) + struct.pack("<III", 2, 2000000, 3)
    for kind, instance in (("ram", 0), ("vcpu", 0), ("vcpu", 1)):
        vm += key(kind, instance) + struct.pack("<II", 1, 1)
    vm += string("fuzz")
    return struct.pack("<QB", 3, 1) + vm + struct.pack("<IB", 2, 1)


def ram_payload():
    runs = [(0x0, 2, 1), (0x10000, 16, 0), (0xFF000, 1, 1)]
    out = struct.pack("<I", len(runs))
    for gpa, pages, kind in runs:
        out += struct.pack("<QIB", gpa, pages, kind)
        if kind == 1:
            out += b"".join(page(gpa // PAGE + p) for p in range(pages))
    return out


def zstd(data):
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        return subprocess.run(["zstd", "-q", "-c", "--no-check", f.name], check=True,
                              stdout=subprocess.PIPE).stdout


def packet(sequence, data_gpas, zero_gpas, codec=0, sync=False, round_=1):
    data = b"".join(page(gpa // PAGE) for gpa in data_gpas)
    payload = zstd(data) if codec == 1 else data
    lists = b"".join(struct.pack("<Q", g) for g in list(data_gpas) + list(zero_gpas))
    head = struct.pack("<IHHQIIIIB3xII", 0x46444D47, 1, 1 if sync else 0, sequence, round_,
                       len(data_gpas), len(zero_gpas), PAGE, codec, len(payload),
                       crc32c(payload))
    return head + struct.pack("<I", crc32c(lists, crc32c(head))) + lists + payload


def hello():
    body = b"GDWTMIGR" + struct.pack("<I", 1) + bytes(range(16)) + struct.pack("<BI", 2, 3)
    return body + struct.pack("<I", crc32c(body))


def migration_seeds():
    """(name, selector, flags, input) per seed."""
    frame = lambda t, payload: struct.pack("<H", t) + payload
    yield "frame_setup", 0, 0, frame(SETUP, setup_payload())
    yield "frame_setup_accept", 0, 0, frame(SETUP_ACCEPT, struct.pack("<QB", 1, 1))
    yield "frame_section_ram", 0, 0, frame(SECTION, key("ram", 0) + struct.pack("<I", 1) +
                                           ram_payload())
    yield "frame_pong", 0, 0, frame(PONG, struct.pack("<I", 7))
    yield "frame_loaded", 0, 0, frame(LOADED, struct.pack("<Q", 1234))
    yield "frame_error", 0, 0, frame(ERROR, string("vCPU count: source 2, destination 1"))
    yield "frame_switchover_ack", 0, 0, frame(SWITCHOVER_ACK, key("vcpu", 1) +
                                              struct.pack("<I", 5))
    yield "frame_go", 0, 0, frame(GO, b"")
    yield "hello", 1, 0, hello()
    yield "multifd_none", 2, 0, (packet(0, [0x1000, 0x3000], [0x2000]) +
                                 packet(1, [], [], sync=True))
    yield "multifd_zstd", 2, 1 | 2, (packet(0, [0x4000, 0x5000, 0x6000], [0x7000], codec=1) +
                                     packet(1, [0x8000], []) + packet(2, [], [], sync=True))
    yield "ram_section", 3, 0, ram_payload()
    gpas = struct.pack("<QQQ", 0x2000, 0xFE000, 0x3000)
    yield "load_pages", 4, 1, struct.pack("<BB", 2, 1) + gpas + page(2) + page(0xFE)
    section = key("ram", 0) + struct.pack("<I", 1) + ram_payload()
    stream = hello() + b"".join(wire_frame(t, p) for t, p in (
        (SETUP, setup_payload()), (SECTION, section), (PING, struct.pack("<I", 1)),
        (COMPLETE, b""), (GO, b"")))
    yield "main_stream", 5, 2, stream


def wire_frame(frame_type, payload):
    """type u16 | length u32 | payload | crc32c over all of that."""
    body = struct.pack("<HI", frame_type, len(payload)) + payload
    return body + struct.pack("<I", crc32c(body))


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    out = os.path.join(root, "virtqueue")
    os.makedirs(out, exist_ok=True)
    for name, image in seeds():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(image.bytes())
    out = os.path.join(root, "migration")
    os.makedirs(out, exist_ok=True)
    for name, selector, flags, data in migration_seeds():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(struct.pack("<BB", selector, flags) + data)


if __name__ == "__main__":
    main()
