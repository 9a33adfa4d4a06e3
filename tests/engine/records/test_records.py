"""The records' fast positional constructor builds the same frozen objects as their own."""

from __future__ import annotations

import dataclasses

import pytest

from inspector.engine.records import (
    Call,
    SourceLine,
    Stats,
    Struct,
    TensorInfo,
    Units,
    positional_builder,
)

INFO = TensorInfo((4, 3), "float32", "cpu", True, None, "strided", False, 2, 1)
STATS = Stats(12, 0.5, 1.5, -2.0, 3.0, 1, 2, 0.25, (1, 2, 3), (-2.0, 3.0), 12)
CALL = Call(
    7, "block.0", 1, "Linear", 2, 3, (INFO,), Struct("kwargs", (("mask", None),)), INFO, "ok",
    None, "Linear(in_features=3, out_features=3, bias=True)", 12, 0.5,
    SourceLine("model.py", 10, "x = self.fc(x)", "forward"), Units(1, 3, dead=(0,)), None,
)  # fmt: skip


@pytest.mark.parametrize("record", [INFO, STATS, CALL], ids=lambda r: type(r).__name__)
def test_positional_builder_gives_the_records_own_object(record: object) -> None:
    cls = type(record)
    values = [getattr(record, f.name) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    built = positional_builder(cls)(*values)
    assert type(built) is cls
    assert built == record and hash(built) == hash(record)
    assert repr(built) == repr(record)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, dataclasses.fields(cls)[0].name, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # every field is required, none is guessed
        positional_builder(cls)(*values[:-1])
