"""Immutable records of a forward pass: what crosses from the engine to every front end.

Nothing here holds a live tensor, module or hook handle. Records are frozen dataclasses with
slots (the Trace excepted: it also holds the live output and exception of the pass it
records), so a trace of many thousand calls stays small and can be handed to another thread.

- tensors: Stats, TensorInfo, Struct (and the Value they make up), Gradient, Units.
- calls: SourceLine, Call, OpInfo, Diagnosis.
- trace: Trace, RecordedError.
"""

from inspector.engine.records.calls import (
    ERROR_CLASS,
    Call,
    Diagnosis,
    OpInfo,
    SourceLine,
    exception_message,
    exception_text,
    is_diagnosis,
)
from inspector.engine.records.tensors import (
    Gradient,
    Stats,
    Struct,
    TensorInfo,
    Units,
    Value,
    first_tensor,
    format_shape,
    positional_builder,
    tensors_in,
)
from inspector.engine.records.trace import RecordedError, Trace

__all__ = [
    "ERROR_CLASS",
    "Call",
    "Diagnosis",
    "Gradient",
    "OpInfo",
    "RecordedError",
    "SourceLine",
    "Stats",
    "Struct",
    "TensorInfo",
    "Trace",
    "Units",
    "Value",
    "exception_message",
    "exception_text",
    "first_tensor",
    "format_shape",
    "is_diagnosis",
    "positional_builder",
    "tensors_in",
]
