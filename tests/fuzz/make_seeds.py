#!/usr/bin/env python3
"""Writes the virtqueue fuzzer's seed corpus (tests/fuzz/corpus/*.bin): a few
well-formed rings (plain, multi-descriptor, indirect, wrap-around, event
index) and a few malformed ones, in the input layout documented at the top of
virtqueue_fuzzer.cpp. Re-run after changing that layout."""
import os
import struct

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


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, image in seeds():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(image.bytes())


if __name__ == "__main__":
    main()
