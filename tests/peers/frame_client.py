# 粘包 (sticky packets), fixed the way seed 003 suggests: every message
# carries its length first, a 4-byte big-endian header (struct.pack('>I')).
# All messages go out in ONE sendall on purpose, so they stick together on
# the wire; the length prefix is what lets the server split them again.
# usage: frame_client.py HOST PORT MESSAGE...
import socket
import struct
import sys

client = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
client.settimeout(10)
client.connect((sys.argv[1], int(sys.argv[2])))
msgs = [m.encode('utf-8') for m in sys.argv[3:]]
client.sendall(b''.join(struct.pack('>I', len(m)) + m for m in msgs))


def recv_exact(n):
    data = b''
    while len(data) < n:
        chunk = client.recv(n - len(data))
        if not chunk:
            raise ConnectionError('server closed mid-frame')
        data += chunk
    return data


for _ in msgs:
    (length,) = struct.unpack('>I', recv_exact(4))
    print(recv_exact(length).decode('utf-8'))
client.close()
