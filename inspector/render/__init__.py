"""Rich renderables over engine records, shared by the report and the TUI (never Textual)."""

from inspector.render.contrib import ContributionBars
from inspector.render.detail import CallDetail, Histogram, call_tensors, tensor_table
from inspector.render.diagnosis import DiagnosisPanel, source_snippet
from inspector.render.text import count, io_shapes, number, shape
from inspector.render.trace_table import TraceTable, call_label

__all__ = [
    "CallDetail",
    "ContributionBars",
    "DiagnosisPanel",
    "Histogram",
    "TraceTable",
    "call_label",
    "call_tensors",
    "count",
    "io_shapes",
    "number",
    "shape",
    "source_snippet",
    "tensor_table",
]
