#!/usr/bin/env python3
"""Writes the binary seeds of the fuzz corpus: fuzz/corpus/flatten/* and
fuzz/corpus/dhcp/*. The text seeds (cmdline, reference, manifest) are plain
files written by hand. Output is deterministic: run it again and git should
show no change.

flatten: the target splits its input in half and reads each half as one
uncompressed layer tar, so each seed is two tars padded to the same length.
tar: not written here: the first tar of each flatten seed (`head -c` half
of it) and GNU tar's sparse formats (crates/wyrcan-core/tests/fixtures/tar/
gen.sh makes the same files).
dhcp: the target's client has MAC 02:00:00:00:00:01 and xid 7 and has just
sent its DISCOVER, so an OFFER for it goes deepest; ACK/NAK still decode.
tpm: TPM 2.0 responses to PCR_Read and PCR_Extend, good and refused.
dhcp6: server messages; the target also re-addresses each to its client
(xid, DUID, IAID) as Advertise and Reply, so one message drives the whole
exchange. The first two are the Advertise and Reply of systemd's DHCPv6
client test (test-dhcp6-client.c).
ra: router advertisements, the first the one systemd's NDisc test sends.
squashfs: writer calls, one op byte then a path, a meta and the op's
arguments (see fuzz_targets/squashfs.rs); a tree of each kind of entry and
a file written block by block.
payload: not written here (its seeds are signed): see gen-payload.sh.
"""

import io
import os
import struct
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
MTIME = 1700000000


def member(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.size = len(data) if kind in (tarfile.REGTYPE, tarfile.CONTTYPE) else 0
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, data


def d(name, mode=0o755):
    return member(name, tarfile.DIRTYPE, mode=mode)


def layer(members, fmt=tarfile.GNU_FORMAT, trailer=False):
    """A tar of members, without the padding to 10 KiB that tarfile adds
    (and, unless trailer, without the two zero blocks that end an archive,
    which tar readers do not need): every 512-byte block counts when seeds
    are to stay a few KiB."""
    out = io.BytesIO()
    for ti, data in members:
        out.write(ti.tobuf(fmt, "utf-8", "surrogateescape"))
        if ti.size:
            out.write(data)
            out.write(b"\0" * (-len(data) % 512))
    if trailer:
        out.write(b"\0" * 1024)
    return out.getvalue()


def pair(a, b):
    n = max(len(a), len(b))
    return a.ljust(n, b"\0") + b.ljust(n, b"\0")


def flatten_seeds():
    yield "base-whiteout", pair(
        layer([
            member("etc/hostname", data=b"wyrcan\n"),
            member("usr/bin/sh", data=b"#!/bin/sh\necho hi\n", mode=0o755),
            member("usr/bin/bash", tarfile.LNKTYPE, linkname="usr/bin/sh"),
            member("bin", tarfile.SYMTYPE, linkname="usr/bin", mode=0o777),
        ]),
        layer([
            member("etc/.wh.hostname"),
            member("etc/os-release", data=b"ID=wyrcan\n"),
            member("bin/ls", data=b"\x7fELF", mode=0o755),  # through the symlink
            d("etc/", mode=0o700),  # metadata only
        ]),
    )
    yield "opaque-dir", pair(
        layer([
            member("opt/a/one", data=b"1"),
            member("opt/two", data=b"2"),
            member("var/lib/implied", data=b"parents not listed"),
        ], trailer=True),
        layer([
            member("opt/.wh..wh..opq"),
            member("opt/three", data=b"3"),
            member("var/.wh..wh.plnk"),  # aufs bookkeeping, not a deletion
            member("var/lib", data=b"file over dir"),
        ], trailer=True),
    )
    yield "escape-attempts", pair(
        layer([
            member("../../etc/passwd", data=b"root::0:0::/:/bin/sh\n"),
            member("/abs/file", data=b"x"),
            member("evil", tarfile.SYMTYPE, linkname="/etc", mode=0o777),
            member("up", tarfile.SYMTYPE, linkname="../../..", mode=0o777),
        ]),
        layer([
            member("evil/shadow", data=b"x"),
            member("up/escaped", data=b"y"),
            member("hard", tarfile.LNKTYPE, linkname="../../etc/passwd"),
        ]),
    )
    yield "symlink-loop", pair(
        layer([member("loop", tarfile.SYMTYPE, linkname="loop/x", mode=0o777)]),
        layer([member("loop/z", data=b"z")]),
    )
    long_dir = "usr/lib/" + "x" * 100 + "/"
    yield "long-names-devices", pair(
        layer([  # GNU ././@LongLink entries
            member(long_dir + "gnu-long-name", data=b"long"),
            member("link", tarfile.SYMTYPE, linkname=long_dir + "t" * 20, mode=0o777),
        ]),
        layer([
            member(long_dir + "pax-" + "y" * 20, data=b"pax",
                   pax_headers={"mtime": "1700000001.5", "uid": "3000000"}),
            member("dev/console", tarfile.CHRTYPE, mode=0o600, devmajor=5, devminor=1),
            member("run/fifo", tarfile.FIFOTYPE, mode=0o644),
            member("usr/bin/suid", data=b"s", mode=0o4755, uid=1000, gid=1000),
        ], tarfile.PAX_FORMAT),
    )


def dhcp(msg_type, yiaddr, siaddr="0.0.0.0", opts=(), xid=7, op=2,
         mac=b"\x02\x00\x00\x00\x00\x01"):
    ip = lambda s: bytes(int(x) for x in s.split("."))
    hdr = struct.pack("!BBBBIHH", op, 1, 6, 0, xid, 0, 0x8000)
    hdr += ip("0.0.0.0") + ip(yiaddr) + ip(siaddr) + ip("0.0.0.0")
    hdr += mac.ljust(16, b"\0") + b"\0" * 64 + b"\0" * 128
    body = bytes([99, 130, 83, 99, 53, 1, msg_type])
    for code, value in opts:
        value = ip(value) if isinstance(value, str) else value
        body += bytes([code, len(value)]) + value
    body += b"\xff"
    return (hdr + body).ljust(300, b"\0")


def dhcp_seeds():
    full = [
        (54, "10.0.2.2"), (51, struct.pack("!I", 86400)), (1, "255.255.255.0"),
        (3, bytes([10, 0, 2, 2, 10, 0, 2, 1])), (6, bytes([10, 0, 2, 3, 1, 1, 1, 1])),
        (12, b"wyrcan"),
        (252, b"http://10.0.2.2/wpad.dat"),
    ]
    yield "offer", dhcp(2, "10.0.2.15", opts=full)
    yield "offer-siaddr-only", dhcp(2, "192.168.1.50", siaddr="192.168.1.1",
                                    opts=[(1, "255.255.0.0")])
    # RFC 3396: a long option split in two, concatenated by the decoder.
    yield "offer-split-option", dhcp(2, "10.0.2.16", opts=[
        (54, "10.0.2.2"), (6, bytes([8, 8])), (6, bytes([8, 8]))])
    yield "ack", dhcp(5, "10.0.2.15", opts=full)
    yield "nak", dhcp(6, "0.0.0.0", opts=[(54, "10.0.2.2"), (56, b"wrong network")])
    yield "other-xid", dhcp(2, "10.0.2.15", opts=full, xid=0x12345678)


def tpm_response(body, rc=0, tag=0x8001):
    return struct.pack("!HII", tag, 10 + len(body), rc) + body


def pcr_read(bitmap, digests, counter=42):
    body = struct.pack("!II", counter, 1) + struct.pack("!HB", 0x000B, len(bitmap))
    body += bytes(bitmap) + struct.pack("!I", len(digests))
    for d in digests:
        body += struct.pack("!H", len(d)) + d
    return tpm_response(body)


def tpm_seeds():
    value = bytes(range(0xa0, 0xc0))
    yield "read-pcr0", pcr_read([0x01, 0, 0], [value])
    yield "read-pcr12", pcr_read([0, 0x10, 0], [value])
    yield "read-pcr23", pcr_read([0, 0, 0x80], [value])
    yield "read-unallocated", pcr_read([0, 0, 0], [])
    # PCR_Extend's answer: no parameters, one password-session response.
    yield "extend-ok", tpm_response(struct.pack("!IHBH", 0, 0, 1, 0), tag=0x8002)
    yield "locality", tpm_response(b"", rc=0x907)
    yield "auth-fail", tpm_response(b"", rc=0x98E, tag=0x8002)


def opt6(code, data):
    return struct.pack("!HH", code, len(data)) + data


def names(*ns):
    out = b""
    for n in ns:
        for label in n.split("."):
            out += bytes([len(label)]) + label.encode()
        out += b"\0"
    return out


V6 = {
    "server": bytes.fromhex("20010db8deadbeef78ee1cf3093c55ad"),
    "dns": bytes.fromhex("20010db8deadbeef0000000000000001"),
    "ntp": bytes.fromhex("fd00000000000000000000000000007b"),
    "mcast": bytes.fromhex("ff050000000000000000000000000101"),
}
SYSTEMD_ADVERTISE = bytes.fromhex(
    "020fb4e50001000e000100011a6bf3303c970ecfa37d0003005e0ecfa37d0000005000000078"
    "000500182001 0db8deadbeef78ee1cf3093c55ad00000096000000b4000d00320000416464"
    "726573732865732920726 56e657765642e204772656574696e67732066726f6d20706c616e"
    "6574204561727468001700102001 0db8deadbeef0000000000000001001800 0b036c616205"
    "696e74726100001f0010 20010db8deadbeef00000000000000010002000e00010001194 05c"
    "53782bcbb36d5300070001 00".replace(" ", ""))
SYSTEMD_REPLY = bytes.fromhex(
    "07f74e570002000e00010001194 05c53782bcbb36d530001000e000100011a6bf3303c970e"
    "cfa37d0003004a0ecfa37d00000050000000780005001820010db8deadbeef78ee1cf3093c55"
    "ad00000096000000b4000d001e0000416c6c2061646472657373657320776572652061737369"
    "676e65642e0017001020010db8deadbeef00000000000000010018000b036c616205696e7472"
    "6100001f001020010db8deadbeef0000000000000001".replace(" ", ""))


def dhcp6_seeds():
    yield "systemd-advertise", SYSTEMD_ADVERTISE
    yield "systemd-reply", SYSTEMD_REPLY
    server = opt6(2, bytes.fromhex("000300015254000000fe"))
    client = opt6(1, bytes.fromhex("00030001020000000001"))
    ia = struct.pack("!III", 1, 0, 0)
    ia += opt6(5, V6["server"] + struct.pack("!II", 3600, 7200))
    ntp = opt6(56, opt6(1, V6["ntp"])) + opt6(56, opt6(2, V6["mcast"]))
    ntp += opt6(56, opt6(3, names("time.example.com")))
    yield "advertise-pref255-ntp", (
        struct.pack("!I", 0x02000007) + client + server + opt6(7, b"\xff")
        + opt6(3, ia) + opt6(23, V6["dns"]) + opt6(24, names("dc1.example.com", "example.com"))
        + ntp + opt6(82, struct.pack("!I", 120)))
    no_addrs = struct.pack("!III", 1, 0, 0) + opt6(13, b"\x00\x02no addresses left")
    yield "advertise-noaddrsavail", (
        struct.pack("!I", 0x02000007) + client + server + opt6(3, no_addrs))
    yield "reply-stateless", (
        struct.pack("!I", 0x07000007) + server + client + opt6(23, V6["dns"])
        + opt6(24, names("lab.intra")) + opt6(31, V6["ntp"]) + ntp
        + opt6(13, b"\x00\x00ok"))


SYSTEMD_RA = bytes.fromhex(
    "8600de8340c000b400000000000000000304 40c0000001f4000001b800000000"
    "20010db8deadbeef0000000000000000190300000000003c20010db8deadbeef"
    "00000000000000011f0300000000003c036c616205696e747261000000000000"
    "0101782bcbb36d53".replace(" ", ""))


def ra_seeds():
    yield "systemd", SYSTEMD_RA
    dnssl = names("dc1.example.com", "example.com")
    dnssl += b"\0" * (-(8 + len(dnssl)) % 8)
    radvd = bytes([134, 0, 0, 0, 255, 0x40, 0x07, 0x08]) + struct.pack("!II", 30000, 1000)
    radvd += bytes([5, 1, 0, 0]) + struct.pack("!I", 9000)
    radvd += bytes([25, 5, 0, 0]) + struct.pack("!I", 0xffffffff) + V6["dns"] + V6["ntp"]
    radvd += bytes([31, (8 + len(dnssl)) // 8, 0, 0]) + struct.pack("!I", 3600) + dnssl
    radvd += bytes([3, 4, 64, 0x80]) + struct.pack("!III", 10, 5, 0)
    radvd += bytes.fromhex("20010db8000100000000000000000000")
    yield "radvd-mtu-rdnss-dnssl", radvd
    yield "zero-length-option", SYSTEMD_RA[:17] + b"\0" + SYSTEMD_RA[18:]
    yield "solicitation", bytes([133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 1])


def squashfs_seeds():
    meta = bytes([0x75, 5, 0, 0, 3])
    def path(*comps):
        return bytes([len(comps) - 1, *comps])
    tree = bytes([0])                                   # 4 KiB blocks
    tree += bytes([1]) + path(0) + meta                 # the root's meta
    tree += bytes([0]) + path(0) + meta                 # dir a
    tree += bytes([4]) + path(0, 1) + meta + bytes([60, 3, 200]) + path(2)  # a/b, 5.8 KiB
    tree += bytes([0x84]) + path(0, 2) + meta + bytes([1, 1, 9]) + path(0, 3)  # a/c = a/d, zeros
    tree += bytes([2]) + path(1) + meta + path(0, 1)    # symlink b -> a/b
    tree += bytes([3]) + path(2) + meta + bytes([1])    # char device c
    tree += bytes([3]) + path(3) + meta + bytes([0])    # fifo d
    yield "tree", tree
    blocks = bytes([1])                                 # 8 KiB blocks
    blocks += bytes([5]) + path(0) + meta + bytes([4, 0, 1, 6, 5])
    blocks += bytes([5]) + path(1) + meta + bytes([2, 5, 0])
    yield "blocks", blocks


def write(sub, seeds):
    os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    for name, data in seeds:
        with open(os.path.join(HERE, sub, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("flatten", flatten_seeds())
    write("dhcp", dhcp_seeds())
    write("tpm", tpm_seeds())
    write("dhcp6", dhcp6_seeds())
    write("ra", ra_seeds())
    write("squashfs", squashfs_seeds())
