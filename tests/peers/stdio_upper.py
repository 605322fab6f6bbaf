# 大写回显服务, seed 003's upper-case echo, run once per connection behind
# `sockit forward ... exec:` the way inetd runs a program: the connection
# is stdin and stdout, so there is no socket code at all.
import os
import sys

# 1、谁连接的 (the relay puts the peer in the environment)
peer = os.environ.get('SOCKIT_PEER_ADDR', '?')
# 2、循环接收数据, 大写后发回
for line in sys.stdin:
    sys.stdout.write(line.upper())
    sys.stdout.flush()
# 3、客户端关闭了连接 (stdin ended): log it; the relay half-closes
sys.stderr.write('client ' + peer + ' went away\n')
