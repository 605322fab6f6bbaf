# TCP客户端, written the way seed 000 writes it, made non-interactive:
# the messages come from the command line instead of input().
# usage: seed000_client.py HOST PORT MESSAGE...
import socket
import sys

# 1、创建socket对象
client_socket = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
client_socket.settimeout(10)
# 2、连接到服务端
client_socket.connect((sys.argv[1], int(sys.argv[2])))
for msg in sys.argv[3:]:
    # 3、发送数据 (sendall, not the seed's send: send may write only part)
    client_socket.sendall((msg + '\n').encode('utf-8'))
    # 4、接收数据: read until the reply line is complete
    re_data = b''
    while not re_data.endswith(b'\n'):
        chunk = client_socket.recv(1024)
        if not chunk:
            break
        re_data += chunk
    print(re_data.decode('utf-8').rstrip('\n'))
# 5、关闭网络连接
client_socket.close()
