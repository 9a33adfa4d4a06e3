"""Where a pass failed: the user's source line and the torch op with its operand shapes.

Everything comes from the exception's own traceback, read after the fact; no user code runs
again. The line is the deepest frame outside torch and the inspector (the `x.view(...)` in a
forward, or the `self.fc1(x)` that called a built-in layer). The op is the expression that
raised in the deepest frame that is not torch's own plumbing (torch.nn's layers count: their
`F.linear(input, self.weight, self.bias)` is the op): the frame's last instruction has exact
source columns (PEP 657), which pick the call or operator out of its line, and its operands
are looked up in the frame's variables. Looking up reads dictionaries and tensor metadata
only: no property, `__getattr__`, `__torch_function__` or other user code is ever called.
"""

from __future__ import annotations

import ast
import linecache
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
from torch import nn

from inspector.engine.capture.describe import Describer
from inspector.engine.capture.naming import is_library_file, source_line
from inspector.engine.diagnose.operands import ModuleOutput, Operands
from inspector.engine.records import OpInfo, SourceLine

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_LAYERS_DIR = os.path.join(_TORCH_DIR, "nn", "modules") + os.sep
_MODULE_PY = os.path.join(_LAYERS_DIR, "module.py")
_INSPECTOR_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_INSPECTOR_DIR += os.sep  # the package, inspector/ (not a sibling such as inspector_extras/)


def user_line(tb: TracebackType | None) -> SourceLine | None:
    """The deepest traceback frame that is the user's code."""
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if not is_library_file(code.co_filename):
            found = source_line(code.co_filename, tb.tb_lineno, code.co_name)
        tb = tb.tb_next
    return found


@dataclass
class FailedOp:
    """The torch function that raised, with its live arguments (kept only for diagnosis).

    An operand that could not be read without running code is `UNKNOWN`.
    """

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    exception: BaseException
    line: SourceLine | None

    def info(self) -> OpInfo:
        describe = Describer(stats=False).describe
        operands = tuple(describe(a) for a in self.args)
        kwargs = tuple((k, describe(v)) for k, v in self.kwargs.items())
        return OpInfo(name=self.name, operands=operands, kwargs=kwargs)


def op_name(func: Callable[..., Any]) -> str:
    """'linear', 'view', 'conv2d', 'cat'... from a torch function or Tensor method."""
    name = getattr(func, "__name__", None) or str(func)
    if name == "__get__":  # properties such as Tensor.shape go through __get__
        owner = getattr(func, "__self__", None)
        name = getattr(owner, "__name__", name)
    return name.strip("_") if name.startswith("__") else name


_DISPATCH = frozenset(("__torch_function__", "__torch_dispatch__"))


def _plumbing(code: Any) -> bool:
    """torch's own code between an op and its caller (torch.nn's layers are not: their
    forward holds the op a layer runs), a tensor subclass's or mode's dispatch (the op was
    written where it was called, not there), and the inspector's."""
    if code.co_name in _DISPATCH:
        return True
    filename = code.co_filename
    if filename.startswith(_INSPECTOR_DIR):
        return True
    if not filename.startswith(_TORCH_DIR):
        return False
    return not filename.startswith(_LAYERS_DIR) or filename == _MODULE_PY


def failing_op(exc: BaseException, outputs: ModuleOutput | None = None) -> FailedOp | None:
    """The op that raised `exc`, read from its traceback; None when the error was raised by
    Python code (a `raise`, an assert) rather than by an op, or when it cannot be read.

    `outputs` gives the recorded output of a module called inside the failing expression
    (`torch.cat([self.up(x), skip])`): a stand-in tensor of that shape, dtype and device.
    """
    try:
        with torch._C.DisableTorchFunctionSubclass():  # no subclass of the user's sees it
            return _failing_op(exc, outputs)
    except Exception:  # the explanation is a bonus: never let it hide the user's error
        return None


def _failing_op(exc: BaseException, outputs: ModuleOutput | None) -> FailedOp | None:
    tb = exc.__traceback__
    chosen: TracebackType | None = None
    while tb is not None:
        if not _plumbing(tb.tb_frame.f_code):
            chosen = tb
        tb = tb.tb_next
    if chosen is None:
        return None
    frame = chosen.tb_frame
    code = frame.f_code
    node = _expression_at(code, chosen.tb_lasti)
    if node is None:
        return None
    found = Operands(frame, outputs).op(node)
    if found is None:
        return None
    name, args, kwargs = found
    line = source_line(code.co_filename, chosen.tb_lineno, code.co_name)
    return FailedOp(name, args, kwargs, exc, line)


def _expression_at(code: Any, lasti: int) -> ast.expr | None:
    """The expression whose evaluation the instruction at byte offset `lasti` performs."""
    if lasti < 0:
        return None
    positions = list(code.co_positions())
    index = lasti // 2
    if index >= len(positions):
        return None
    lineno, end_lineno, col, end_col = positions[index]
    if None in (lineno, end_lineno, col, end_col):
        return None
    lines = [
        linecache.getline(code.co_filename, n).encode("utf-8")
        for n in range(lineno, end_lineno + 1)
    ]
    if not lines or not lines[0]:
        return None
    if len(lines) == 1:
        text = lines[0][col:end_col]
    else:
        text = lines[0][col:] + b"".join(lines[1:-1]) + lines[-1][:end_col]
    try:
        tree = ast.parse(b"(" + text.strip() + b"\n)", mode="eval")
    except (SyntaxError, ValueError):
        return None
    return tree.body


def module_chain(exc: BaseException) -> list[tuple[nn.Module, tuple[Any, ...], dict[str, Any]]]:
    """The module calls the exception unwound, outermost first, each with the inputs it was
    called with (read from torch's call frames in the traceback; nothing is run)."""
    chain: list[tuple[nn.Module, tuple[Any, ...], dict[str, Any]]] = []
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        if code.co_name == "_call_impl" and code.co_filename == _MODULE_PY:
            local = frame.f_locals
            module = local.get("self")
            args, kwargs = local.get("args", ()), local.get("kwargs", {})
            if isinstance(module, nn.Module) and type(args) is tuple and type(kwargs) is dict:
                chain.append((module, args, kwargs))
        tb = tb.tb_next
    return chain
