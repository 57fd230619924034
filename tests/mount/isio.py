"""isio.py - ImageStreamIO "2.00" stream files for the tests, written exactly
as ../shared/formats/imagestreamio.md lays them out (little-endian, 64-bit,
CPU location, no circular buffer), and a writer that follows the stream's
update protocol. The tests write their own streams: no milk needed."""

import mmap
import os
import struct
import time

METADATA_SIZE = 384
KEYWORD_SIZE = 128
SEM_SIZE = 32
PROCTRACE = 10

# datatype code: (name, bytes per element)
DATATYPES = {1: ('uint8', 1), 2: ('int8', 1), 3: ('uint16', 2), 4: ('int16', 2),
             5: ('uint32', 4), 6: ('int32', 4), 7: ('uint64', 8), 8: ('int64', 8),
             9: ('float32', 4), 10: ('float64', 8), 11: ('complex64', 8),
             12: ('complex128', 16), 13: ('float16', 2)}

OFF_VERSION, OFF_NAME, OFF_NAXIS, OFF_SIZE, OFF_NELEMENT = 0, 32, 112, 116, 128
OFF_DATATYPE, OFF_IMAGETYPE, OFF_CREATIONTIME, OFF_WRITETIME = 136, 144, 152, 200
OFF_ATIME = 184
OFF_CREATORPID, OFF_OWNERPID, OFF_SHARED, OFF_INODE = 216, 220, 224, 232
OFF_LOCATION, OFF_SEM, OFF_NBPROCTRACE, OFF_CNT0, OFF_CNT1 = 240, 258, 260, 264, 272
OFF_WRITE, OFF_NBKW, OFF_IMDATAMEMSIZE = 288, 290, 312


def r8(n):
    return (n + 7) // 8 * 8


def layout(datatype, dims, nbkw=0, nsem=10):
    """Offsets of the regions and the file size: dict with data, keywords,
    sems, semlog, pids, proctrace, size."""
    nelement = 1
    for d in dims:
        nelement *= d
    datasize = DATATYPES[datatype][1] * nelement
    o = {'data': METADATA_SIZE, 'datasize': datasize, 'nelement': nelement}
    o['keywords'] = o['data'] + r8(datasize)
    o['sems'] = o['keywords'] + r8(KEYWORD_SIZE * nbkw)
    o['semlog'] = o['sems'] + r8(SEM_SIZE * nsem)
    o['pids'] = o['semlog'] + SEM_SIZE
    o['proctrace'] = o['pids'] + 4 * r8(4 * nsem)
    o['size'] = o['proctrace'] + r8(64 * PROCTRACE)
    return o


def make_stream(path, name, datatype=9, dims=(8, 8), nbkw=0, nsem=10, data=b''):
    """Write a stream file at PATH (mode 0666) and return its layout."""
    o = layout(datatype, dims, nbkw, nsem)
    buf = bytearray(o['size'])
    struct.pack_into('32s', buf, OFF_NAME, name.encode())
    struct.pack_into('B', buf, OFF_NAXIS, len(dims))
    struct.pack_into('3I', buf, OFF_SIZE, *(list(dims) + [0] * (3 - len(dims))))
    struct.pack_into('Q', buf, OFF_NELEMENT, o['nelement'])
    struct.pack_into('B', buf, OFF_DATATYPE, datatype)
    struct.pack_into('Q', buf, OFF_IMAGETYPE, 0x2)
    now = time.time()
    struct.pack_into('qq', buf, OFF_CREATIONTIME, int(now), int(now % 1 * 1e9))
    struct.pack_into('ii', buf, OFF_CREATORPID, os.getpid(), os.getpid())
    struct.pack_into('B', buf, OFF_SHARED, 1)
    struct.pack_into('b', buf, OFF_LOCATION, -1)
    struct.pack_into('H', buf, OFF_SEM, nsem)
    struct.pack_into('H', buf, OFF_NBPROCTRACE, PROCTRACE)
    struct.pack_into('H', buf, OFF_NBKW, nbkw)
    struct.pack_into('Q', buf, OFF_IMDATAMEMSIZE, o['datasize'])
    buf[o['data']:o['data'] + len(data)] = data
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.fchmod(fd, 0o666)
        os.write(fd, bytes(buf))
        struct.pack_into('Q', buf, 0, 0)
        os.pwrite(fd, struct.pack('Q', os.fstat(fd).st_ino), OFF_INODE)
        os.pwrite(fd, b'2.00'.ljust(32, b'\0'), OFF_VERSION)  # written last
    finally:
        os.close(fd)
    return o


class Writer:
    """Updates a stream the way ImageStreamIO's writers do: write = 1, pixels,
    write time, cnt0 + 1, write = 0."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR)
        self.map = mmap.mmap(self.fd, os.fstat(self.fd).st_size, mmap.MAP_SHARED)

    def frame(self, pixels):
        m = self.map
        struct.pack_into('B', m, OFF_WRITE, 1)
        m[METADATA_SIZE:METADATA_SIZE + len(pixels)] = pixels
        now = time.time()
        struct.pack_into('qq', m, OFF_WRITETIME, int(now), int(now % 1 * 1e9))
        cnt0 = struct.unpack_from('Q', m, OFF_CNT0)[0] + 1
        struct.pack_into('Q', m, OFF_CNT0, cnt0)
        struct.pack_into('B', m, OFF_WRITE, 0)
        return cnt0

    def close(self):
        self.map.close()
        os.close(self.fd)
