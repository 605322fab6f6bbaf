# Starts `SOCKIT ARGS... > OUT 2> ERR &` from an interactive bash on a
# pseudo-terminal (job control on), sends PAYLOAD to the port it announces,
# then waits for the job and prints what the shell said ("RC=<code>", and
# "Stopped" if the job stopped on terminal input). Bounded: 20 s.
# With --stop, the job is interrupted (a server that runs until Ctrl-C).
# usage: bg_job.py [--stop] SOCKIT DIR PAYLOAD ARGS...
import os
import pty
import re
import select
import signal
import socket
import sys
import time


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
        r, _, _ = select.select([fd], [], [], t)
        if r:
            try:
                shown += os.read(fd, 4096)
            except OSError:
                pass

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
    while True:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            break
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        shown += data
    sys.stdout.write(shown.decode('utf-8', 'replace'))
    sys.stdout.write('\nOUT=%s\n' % open(out, 'rb').read().decode('utf-8', 'replace'))


if __name__ == '__main__':
    main()
