# Runs a command on a pseudo-terminal, as a person at a shell would, and
# copies what the terminal shows to stdout as it comes. Ends with
# "EXIT <code>" once the command exits. Bounded: gives up after 20 s.
# usage: on_tty.py CMD [ARGS...]
import os
import pty
import select
import signal
import sys
import time


def main():
    cmd = sys.argv[1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    deadline = time.time() + 20
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    sys.stdout.write('\nEXIT %d\n' % os.waitstatus_to_exitcode(status))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
