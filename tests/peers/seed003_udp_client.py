# UDP客户端 from seed 003, made non-interactive (messages from argv), with
# the one fix the seed needs: a timeout, so a lost reply cannot hang it.
# usage: seed003_udp_client.py HOST PORT MESSAGE...
import socket
import sys

client = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
client.settimeout(5)
for msg in sys.argv[3:]:
    client.sendto(msg.encode('utf-8'), (sys.argv[1], int(sys.argv[2])))
    data, addr = client.recvfrom(1024)
    print(data.decode('utf-8'))
client.close()
