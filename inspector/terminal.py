"""Whether a person is at a terminal: decides between the debugger and a printed report."""

from __future__ import annotations

import os
import sys


def interactive() -> bool:
    """Whether a person is at a terminal: keys come from stdin and the debugger draws on
    stderr (as Textual does), both TTYs, and this is not CI. Standard output may be piped
    (`| tee log`): the program's own output goes there."""
    stderr = sys.__stderr__
    return (
        sys.stdin is not None
        and sys.stdin.isatty()
        and stderr is not None
        and stderr.isatty()
        and not os.environ.get("CI")
        and os.environ.get("TERM", "") != "dumb"
    )
