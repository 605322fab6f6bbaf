# 文件下载器 客户端 from seed 002, made non-interactive (server ip, port and
# file name come from argv instead of input()). It keeps the seed's protocol:
# send the GBK-encoded name with no terminator, read until the server
# closes, save as '接收' + name. (It reads to EOF, fixing the seed's single
# recv(1MiB) that truncated larger files.)
# usage: seed002_client.py IP PORT NAME [DESTDIR]
import os
import socket
import sys


def main():
    tcp_client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp_client_socket.settimeout(10)
    server_ip = sys.argv[1]
    server_port = int(sys.argv[2])
    tcp_client_socket.connect((server_ip, server_port))
    file_name = sys.argv[3]
    tcp_client_socket.send(file_name.encode('gbk'))
    chunks = []
    while True:
        recv_data = tcp_client_socket.recv(1024 * 1024)
        if not recv_data:
            break
        chunks.append(recv_data)
    if chunks:
        dest = sys.argv[4] if len(sys.argv) > 4 else '.'
        with open(os.path.join(dest, '接收' + os.path.basename(file_name)), 'wb') as f:
            f.write(b''.join(chunks))
    tcp_client_socket.close()


if __name__ == '__main__':
    main()
