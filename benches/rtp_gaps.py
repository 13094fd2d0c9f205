#!/usr/bin/env python3
"""The gaps between consecutive RTP packets of each stream in a pcap file
(tcpdump -i lo -s 64 -w FILE, see benches/sip-load.sh): prints "p50/p99/worst"
in milliseconds. A perfect 20 ms pacer gives 20/20/20; a late packet makes one
long gap and one short one. Streams are told apart by source and destination
port and SSRC. Standard library only."""
import struct
import sys


def gaps(path):
    data = open(path, "rb").read()
    if len(data) < 24:
        return []
    magic, = struct.unpack("<I", data[:4])
    scale = 1e9 if magic == 0xA1B23C4D else 1e6
    linktype, = struct.unpack("<I", data[20:24])
    l2 = {1: 14, 113: 16}.get(linktype, 0)  # Ethernet (Linux lo), Linux cooked
    last, out, off = {}, [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 15) * 4:]
        if len(udp) < 20 or udp[8] >> 6 != 2:
            continue
        key = (udp[0:4], udp[16:20])  # ports, SSRC
        t = sec + frac / scale
        if key in last:
            out.append((t - last[key]) * 1000)
        last[key] = t
    return sorted(out)


if __name__ == "__main__":
    g = gaps(sys.argv[1])
    if not g:
        sys.exit("no RTP in " + sys.argv[1])
    p = lambda q: g[min(len(g) - 1, int(q * len(g)))]
    print(f"{p(0.5):.1f}/{p(0.99):.1f}/{g[-1]:.1f}")
