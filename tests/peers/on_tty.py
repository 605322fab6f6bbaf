# Runs a command on a pseudo-terminal, as a person at a shell would, and
# copies what the terminal shows to stdout as it comes. With --answer, it
# types ANSWER once PROMPT has appeared. Ends with "EXIT <code>" once the
# command exits. Bounded: kills the command after 20 s. With --eof-after,
# it types Ctrl-D (end of input) once TEXT has appeared.
# usage: on_tty.py [--answer ANSWER PROMPT] [--eof-after TEXT] CMD [ARGS...]
import os
import pty
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'util'))
from ptyio import read_some  # noqa: E402


def main():
    args = sys.argv[1:]
    answer = prompt = None
    if args[:1] == ['--answer']:
        answer, prompt, args = args[1], args[2].encode(), args[3:]
    eof_after = None
    if args[:1] == ['--eof-after']:
        eof_after, args = args[1].encode(), args[2:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(args[0], args)
    seen = b''
    deadline = time.time() + 20
    while time.time() < deadline:
        data = read_some(fd, 0.5)
        if data is None:
            continue
        if not data:
            break
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        seen += data
        if answer is not None and prompt in seen:
            os.write(fd, (answer + '\n').encode())
            answer = None
            seen = b''
        if answer is None and eof_after is not None and eof_after in seen:
            os.write(fd, b'\x04')
            eof_after = None
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    sys.stdout.write('\nEXIT %d\n' % os.waitstatus_to_exitcode(status))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
