# Runs a command on a pseudo-terminal, as a person at a shell would, and
# answers its first question. Prints everything the terminal showed, then
# "EXIT <code>". Bounded: gives up after 20 s.
# usage: tty_answer.py ANSWER PROMPT_TEXT CMD [ARGS...]
import os
import pty
import select
import sys
import time


def main():
    answer, prompt, cmd = sys.argv[1], sys.argv[2].encode(), sys.argv[3:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    seen = b''
    answered = False
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
        seen += data
        if not answered and prompt in seen:
            os.write(fd, (answer + '\n').encode())
            answered = True
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(seen.decode(errors='replace'))
    sys.stdout.write('\nEXIT %d\n' % os.waitstatus_to_exitcode(status))


if __name__ == '__main__':
    main()
