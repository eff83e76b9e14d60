"""A cap on what one cell prints, installed in the grading kernel (bncourse.runner).

A learner who leaves a print in a loop can send the grader hundreds of megabytes: every line a
message to the notebook client, the notebook too big to save or read back, the run out of time
before the test cells record anything. The cap keeps each cell's first HEAD characters of stdout
and of stderr as they come, holds its last TAIL characters back, drops the middle, and at the
end of the cell writes the tail after a line saying how much was cut. Grades never depend on
this: they come from the answers the test cells record.
"""
import sys
from collections import deque

HEAD = 20_000  # characters of a cell's stream kept from its start
TAIL = 5_000   # ... and from its end


class CappedStream:
    """A stream that passes on the first `head` characters of each cell, then keeps a tail."""

    def __init__(self, stream, head=HEAD, tail=TAIL):
        self._stream, self._head, self._tail = stream, head, tail
        self.start_cell()

    def start_cell(self):
        self._written, self._held, self._held_size, self._cut = 0, deque(), 0, 0

    def write(self, text):
        text = str(text)
        size = len(text)
        room = self._head - self._written
        if room > 0:
            shown = text[:room]
            self._written += len(shown)
            self._stream.write(shown)
            text = text[len(shown):]
            if not text:
                return size
        self._held.append(text)
        self._held_size += len(text)
        while self._held_size - len(self._held[0]) >= self._tail:  # whole pieces beyond the tail: cut
            dropped = self._held.popleft()
            self._held_size -= len(dropped)
            self._cut += len(dropped)
        return size

    def end_cell(self):
        """Write what was held back: the cut's size, then the tail."""
        held = "".join(self._held)
        if len(held) > self._tail:
            self._cut += len(held) - self._tail
            held = held[-self._tail:]
        if self._cut:
            self._stream.write(f"\n[... {self._cut:,} characters of output cut by the grader: "
                               f"the first {self._head:,} and the last {self._tail:,} are kept ...]\n")
        if held:
            self._stream.write(held)
        self._stream.flush()
        self.start_cell()

    def flush(self):
        return self._stream.flush()

    def __getattr__(self, name):  # (encoding, isatty, fileno...: the kernel's own stream's)
        return getattr(self._stream, name)


def install(shell=None):
    """Cap sys.stdout and sys.stderr of the running IPython kernel, per cell."""
    shell = shell or get_ipython()  # noqa: F821  (inside a kernel)
    streams = [CappedStream(sys.stdout), CappedStream(sys.stderr)]
    sys.stdout, sys.stderr = streams

    def before(*_):
        for s in streams:
            s.start_cell()

    def after(*_):
        for s in streams:
            s.end_cell()
    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)
    return streams
