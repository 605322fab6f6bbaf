# The UDP client of seed 003, through a SOCKS5 proxy with PySocks
# (Debian's python3-socks): the same sendto/recvfrom loop, but the socket
# is a socks.socksocket, so each datagram goes by the proxy's UDP
# ASSOCIATE. Prints each reply and where it came from.
# usage: pysocks_udp.py PROXY_HOST PROXY_PORT HOST PORT MESSAGE...
import socket
import sys

import socks

client = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
client.set_proxy(socks.SOCKS5, sys.argv[1], int(sys.argv[2]), rdns=True)
client.settimeout(5)
for msg in sys.argv[5:]:
    client.sendto(msg.encode('utf-8'), (sys.argv[3], int(sys.argv[4])))
    data, addr = client.recvfrom(1024)
    print(data.decode('utf-8'), addr[0], addr[1])
client.close()
