"""The engine: hooks, records, statistics, diagnosis. Imports torch and the stdlib only."""

from inspector.engine.capture.events import InspectorWarning, Stop
from inspector.engine.capture.recorder import Recorder
from inspector.engine.diagnose.anomalies import Thresholds
from inspector.engine.records import (
    Call,
    Diagnosis,
    Gradient,
    OpInfo,
    RecordedError,
    SourceLine,
    Stats,
    Struct,
    TensorInfo,
    Trace,
    Units,
    Value,
    first_tensor,
    format_shape,
    tensors_in,
)
from inspector.engine.trace import trace

__all__ = [
    "Call",
    "Diagnosis",
    "Gradient",
    "InspectorWarning",
    "OpInfo",
    "RecordedError",
    "Recorder",
    "SourceLine",
    "Stats",
    "Stop",
    "Struct",
    "TensorInfo",
    "Thresholds",
    "Trace",
    "Units",
    "Value",
    "first_tensor",
    "format_shape",
    "tensors_in",
    "trace",
]
