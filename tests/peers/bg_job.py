# Starts `SOCKIT ARGS... > OUT 2> ERR &` from an interactive bash on a
# pseudo-terminal (job control on), sends PAYLOAD to the port it announces,
# then waits for the job and prints what the shell said ("RC=<code>", and
# "Stopped" if the job stopped on terminal input). Bounded: 20 s.
# With --stop, the job is interrupted (a server that runs until Ctrl-C).
# usage: bg_job.py [--stop] SOCKIT DIR PAYLOAD ARGS...
import os
import pty
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'util'))
from ptyio import drain, read_some  # noqa: E402


def main():
    argv = sys.argv[1:]
    stop = argv[:1] == ['--stop']
    if stop:
        argv = argv[1:]
    sockit, d, payload, args = argv[0], argv[1], argv[2].encode(), argv[3:]
    out, err = os.path.join(d, 'out'), os.path.join(d, 'err')
    for f in (out, err):
        if os.path.exists(f):
            os.remove(f)
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp('bash', ['bash', '--norc', '--noprofile', '-i'])
    deadline = time.time() + 20
    shown = b''

    def pump(t=0.05):
        nonlocal shown
        shown += read_some(fd, t) or b''

    line = ' '.join([sockit] + args) + ' > %s 2> %s &\n' % (out, err)
    os.write(fd, line.encode())
    port = None
    while time.time() < deadline and port is None:
        pump()
        try:
            m = re.search(r'listening on \S+:(\d+)', open(err).read())
        except FileNotFoundError:
            m = None
        if m:
            port = int(m.group(1))
    if port is None:
        os.kill(pid, signal.SIGKILL)
        sys.exit('no listening line: %r' % shown)
    # Give the job a moment in which a read of the terminal would stop it;
    # the shell reports that on the next prompt.
    os.write(fd, b'jobs -l\n')
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    while s.recv(65536):
        pass
    s.close()
    if stop:
        os.write(fd, b'kill -INT %1; ')
    os.write(fd, b'wait %1; echo "RC=$?"; jobs -l; exit\n')
    while time.time() < deadline:
        pump(0.2)
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # What the shell printed before it exited may still be unread.
    shown += drain(fd)
    sys.stdout.write(shown.decode('utf-8', 'replace'))
    sys.stdout.write('\nOUT=%s\n' % open(out, 'rb').read().decode('utf-8', 'replace'))


if __name__ == '__main__':
    main()
