"""The progress line ./lab bench prints while it runs."""
import shutil
import sys
import time


class Progress:
    def __init__(self, total_s):
        self.tty = sys.stdout.isatty()
        self.start = time.monotonic()
        self.total_s = total_s
        self.width = 0

    def line(self, text, left_s):
        el = time.monotonic() - self.start
        s = "[%s elapsed, ~%s left] %s" % (fmt_dur(el), fmt_dur(max(0, left_s)), text)
        if self.tty:
            cols = shutil.get_terminal_size((100, 20)).columns - 1
            s = s[:cols]
            sys.stdout.write("\r" + s.ljust(self.width) + "\r" + s if self.width > len(s) else "\r" + s)
            self.width = len(s)
        else:
            sys.stdout.write(s + "\n")
        sys.stdout.flush()

    def say(self, text):
        if self.tty and self.width:
            sys.stdout.write("\r" + " " * self.width + "\r")
            self.width = 0
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def end(self):
        if self.tty and self.width:
            sys.stdout.write("\n")
            self.width = 0


def fmt_dur(s):
    s = int(round(s))
    return "%d:%02d" % (s // 60, s % 60)
