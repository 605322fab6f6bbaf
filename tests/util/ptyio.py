# Reading a pseudo-terminal, shared by the test peers that drive one
# (on_tty.py, bg_job.py): what the terminal shows, as it comes, each wait
# bounded.
import os
import select


def read_some(fd, timeout):
    """What the terminal shows within `timeout` seconds: bytes, b'' once it
    has closed, or None when nothing came."""
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return b''


def drain(fd, quiet=0.2):
    """Everything the terminal still shows, until it is quiet for `quiet`
    seconds or closes."""
    out = b''
    # Bounded: each pass either reads or ends; a terminal that never stops
    # talking is cut off by the caller's own deadline.
    while True:
        data = read_some(fd, quiet)
        if not data:
            return out
        out += data
