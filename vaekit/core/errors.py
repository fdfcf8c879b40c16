"""vaekit's own errors print as one line: a key or file name holding a newline or other control character is
shown escaped, so the CLI's ``vaekit: error: ...`` never spills over several lines."""

from __future__ import annotations


def one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def brief(error: BaseException, width: int = 160) -> str:
    """A foreign library's error as a whole short clause: its first line, terminal escapes dropped, cut at a word."""
    import re
    import textwrap

    lines = [ln for ln in str(error).splitlines() if ln.strip()] or [type(error).__name__]
    return textwrap.shorten(one_line(re.sub(r"\x1b\[[0-9;]*m", "", lines[0])), width, placeholder=" ...")


class OneLineError(Exception):
    def __str__(self) -> str:
        return one_line(super().__str__())


class DataError(OneLineError, RuntimeError):
    """A data file is missing, corrupt or not what it claims to be; the message names the file."""
