# 文件下载器 服务端 from seed 002: receives a file name, sends the whole
# file, closes. Kept as the seed wrote it (reads the file whole, no path
# checks) except that it serves a fixed number of clients, binds loopback
# on a free port and prints that port, so a test can drive it.
# usage: seed002_server.py DIR CLIENTS
import os
import socket
import sys


def send_file_client(new_client_socket):
    file_name = new_client_socket.recv(1024).decode()
    content = b""
    try:
        with open(file_name, 'rb') as f:
            content = f.read()
    except Exception:
        print("no download file:%s" % file_name, file=sys.stderr)
    new_client_socket.sendall(content)
    new_client_socket.close()


def main():
    os.chdir(sys.argv[1])
    tcp_server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp_server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp_server_socket.bind(("127.0.0.1", 0))
    tcp_server_socket.listen(128)
    print("listening on 127.0.0.1:%d" % tcp_server_socket.getsockname()[1], file=sys.stderr, flush=True)
    for _ in range(int(sys.argv[2])):
        new_client_socket, client_addr = tcp_server_socket.accept()
        send_file_client(new_client_socket)
    tcp_server_socket.close()


if __name__ == '__main__':
    main()
