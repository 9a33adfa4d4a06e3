"""The values a data-flow walk holds (shapes with their history, live objects looked into
without running them) and the meta-tensor evaluation of torch's functions and layers."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from inspector.engine.records import Struct, TensorInfo

if TYPE_CHECKING:
    from inspector.engine.records import Call


class _Unknown:
    def __repr__(self) -> str:
        return "?"


UNKNOWN: Any = _Unknown()
MAX_STEPS = 4000  # statements walked in one function
MAX_TOTAL = 40000  # statements walked for one question, in all functions
MAX_DEPTH = 6  # forwards of the user's walked inside one another
MAX_UNROLL = 256  # iterations of one loop
PLAIN = (torch.Tensor, nn.Parameter)


@dataclass(frozen=True)
class Step:
    """The expression that made a tensor, and where it is."""

    file: str
    lineno: int
    function: str
    expr: str  # `h.view(-1, 16)`, `self.rnn(x)`
    owner: Any = field(default=None, compare=False, repr=False)  # the `self` of that function


@dataclass(eq=False)
class Tensor:
    """A tensor as the walk knows it: shape and dtype, the step that made it, its sources."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    step: Step | None = None  # None: an input of the walked forward
    sources: tuple[Tensor, ...] = field(default=(), repr=False)
    call: Call | None = field(default=None, repr=False)  # the recorded call that returned it
    module: Any = field(default=None, repr=False)  # the live module that made it
    item: int | None = None  # its position in that module's output tuple
    name: str = ""  # the variable that held it, when known
    view: bool = False  # made by a view or reshape of its first source
    known: bool = True  # False: made from known tensors by a step whose shape the walk could
    # not work out (an argument it cannot read); filled in when a real value shows it

    def meta(self) -> torch.Tensor:
        if not self.known:
            raise NotMeta()
        return torch.empty(self.shape, dtype=self.dtype, device="meta")

    def fill(self, shape: tuple[int, ...]) -> None:
        """The shape a real value showed, for a tensor whose step the walk could not
        work out: its history is kept."""
        if not self.known:
            self.shape, self.known = shape, True

    def lineage(self) -> Iterator[Tensor]:
        """This tensor, then the first tensor it was made from, and so on back."""
        seen: set[int] = set()
        value: Tensor | None = self
        while value is not None and id(value) not in seen:
            seen.add(id(value))
            yield value
            value = value.sources[0] if value.sources else None


@dataclass
class Obj:
    """A live object the walk may look into (a module, a function, a config)."""

    value: Any


@dataclass
class Method:
    """`x.view`, before it is called."""

    tensor: Tensor
    name: str


@dataclass
class Bound:
    """A plain Python method of a user's object: `self.encode`."""

    function: FunctionType
    owner: Any


# Methods that read values (data-dependent, or leave torch): never on meta.
DATA_METHODS = frozenset(
    [
        "item",
        "tolist",
        "numpy",
        "cpu",
        "cuda",
        "to",
        "backward",
        "register_hook",
        "nonzero",
        "unique",
        "masked_select",
        "__bool__",
        "__int__",
        "__float__",
        "__index__",
        "data_ptr",
        "storage",
        "untyped_storage",
    ]
)
PY_BUILTINS = (len, int, float, min, max, range, tuple, list, abs, sum)


def py_builtin(function: Any, args: list[Any]) -> Any:
    if function is len and len(args) == 1:
        value = args[0]
        if isinstance(value, Tensor):
            return value.shape[0] if value.shape else UNKNOWN
        return len(value) if isinstance(value, (tuple, list)) else UNKNOWN
    if function in (range, tuple, list) and all(isinstance(a, int) for a in args) and args:
        return tuple(range(*args)) if function is range else UNKNOWN
    if function in (tuple, list) and len(args) == 1 and isinstance(args[0], (tuple, list)):
        return function(args[0])
    if all(isinstance(a, (int, float)) for a in args) and args:
        try:
            return function(*args)
        except Exception:
            return UNKNOWN
    one = args[0] if len(args) == 1 else None
    if function in (min, max, sum) and isinstance(one, (tuple, list)) and one:
        return function(one) if all(isinstance(a, (int, float)) for a in one) else UNKNOWN
    return UNKNOWN


def is_torch_function(target: Any) -> bool:
    """A tensor function of torch's (`F.relu`, `torch.cat`): its arguments are only ever meta
    tensors, numbers, dtypes and tuples of them, so no user code can be reached from it. Only
    the tensor-math namespaces count, and none of their functions that set process state
    (the RNG, defaults, flags, threads) or touch files: the walk must leave the program as
    it was."""
    if type(target) not in (FunctionType, BuiltinFunctionType, METHOD_DESCRIPTOR):
        return False
    name = getattr(target, "__name__", "") or ""
    if type(target) is METHOD_DESCRIPTOR:  # Tensor.view called unbound: a tensor method
        return getattr(target, "__objclass__", None) is torch._C.TensorBase and not (
            name.startswith("_") or name in DATA_METHODS
        )
    module = getattr(target, "__module__", "") or ""
    if module not in _TENSOR_MATH:
        return False
    return not name.startswith(_STATEFUL)


# Where torch's tensor math lives (builtins of torch._C report these or no module at all).
_TENSOR_MATH = frozenset((
    "torch", "torch.functional", "torch.nn.functional", "torch._C._nn",
    "torch._C._VariableFunctions", "torch._C._linalg", "torch._C._special", "torch._C._fft",
    "torch.fft", "torch.linalg", "torch.special", "torch._tensor", "torch.nn.modules.utils",
))  # fmt: skip
# Names that set or read process state, or do I/O: never called by the walk.
_STATEFUL = (
    "set_", "manual_seed", "seed", "initial_seed", "get_rng", "random", "save", "load",
    "compile", "use_deterministic", "are_deterministic", "is_grad", "enable_grad", "no_grad",
    "inference_mode", "autocast", "get_default", "get_num", "init_num", "from_file",
    "from_numpy", "frombuffer", "asarray", "export", "jit", "vmap", "cond", "while_loop",
    "_", "is_", "compiled_with", "get_", "typename", "cuda", "mps", "xpu", "profiler",
)  # fmt: skip


METHOD_DESCRIPTOR = type(torch.Tensor.view)


def torch_tensor_type(kind: type) -> bool:
    """A tensor type whose shape is read by torch's own code: plain tensors, parameters and
    torch's subclasses (the fake tensors of a dry run), never a user's subclass."""
    if kind in PLAIN:
        return True
    return issubclass(kind, torch.Tensor) and (kind.__module__ or "").startswith("torch.")


def is_a(value: Any, classes: type | tuple[type, ...]) -> bool:
    """isinstance by the real type only: a user's `__class__` property never runs."""
    return issubclass(type(value), classes)


def is_library(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    return module.startswith("torch.nn.modules.")


def plain_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


def iterate(items: Any) -> list[Any] | None:
    if isinstance(items, (tuple, list)):
        return list(items)
    if isinstance(items, Obj):
        target = items.value
        if is_a(target, (nn.ModuleList, nn.Sequential)):
            return [Obj(m) for m in target._modules.values() if m is not None]
        if is_a(target, nn.ModuleDict):
            return list(target._modules.keys())
    return None


def items_of(value: Any, n: int) -> list[Any]:
    if isinstance(value, (tuple, list)) and len(value) == n:
        return list(value)
    if isinstance(value, Tensor) and value.known and value.shape and value.shape[0] == n:
        # `q, k, v = t`: one tensor per row of dim 0, each made from t by the same line
        return [Tensor(value.shape[1:], value.dtype, value.step, (value,), view=True)
                for _ in range(n)]  # fmt: skip
    return [UNKNOWN] * n


def _static(owner: Any, name: str) -> Any:
    try:
        return inspect.getattr_static(owner, name)
    except AttributeError:
        return None


def introspect(function: Any, args: list[Any]) -> Any:
    """hasattr, getattr and isinstance on walk values, answered without running the owner's
    code; UNKNOWN when that cannot be sure."""
    if function is isinstance and len(args) == 2 and isinstance(args[1], Obj):
        classes = args[1].value
        if isinstance(args[0], Tensor):
            kinds = classes if type(classes) is tuple else (classes,)
            return any(k is torch.Tensor for k in kinds) or UNKNOWN
        if isinstance(args[0], Obj) and (type(classes) is type or type(classes) is tuple):
            try:
                return is_a(args[0].value, classes)
            except TypeError:
                return UNKNOWN
        if args[0] is None or type(args[0]) in (bool, int, float, str, tuple, list):
            try:
                return isinstance(args[0], classes)
            except TypeError:
                return UNKNOWN
        return UNKNOWN
    if len(args) < 2 or not isinstance(args[0], Obj) or type(args[1]) is not str:
        return UNKNOWN
    owner, name = args[0].value, args[1]
    found = safe_attribute(owner, name)
    if found is not UNKNOWN:
        return True if function is hasattr else wrap(found, owner)
    try:
        inspect.getattr_static(owner, name)
        return UNKNOWN  # there, but a property or descriptor: not read
    except AttributeError:
        pass
    fallback = inspect.getattr_static(type(owner), "__getattr__", None)
    if fallback is not None and fallback is not nn.Module.__getattr__:
        return UNKNOWN  # a __getattr__ of the user's might answer
    if function is hasattr:
        return False
    return args[2] if len(args) == 3 else UNKNOWN


def construct(cls: type, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """A dataclass (a model output) or namedtuple built from walk values, without running
    its constructor: fields in order, read back by name or position."""
    if issubclass(cls, tuple) and isinstance(cls.__dict__.get("_fields"), tuple):
        names = cls.__dict__["_fields"]
        values = dict(zip(names, args, strict=False))
        values.update({k: v for k, v in kwargs.items() if k in names})
        return tuple(values.get(n) for n in names)
    fields = cls.__dict__.get("__dataclass_fields__")
    if type(fields) is not dict:
        return UNKNOWN
    names = list(fields)
    values = dict(zip(names, args, strict=False))
    values.update(kwargs)
    return Fields(cls, {n: values.get(n) for n in names})


@dataclass
class Fields:
    """A dataclass instance as the walk holds it (a Hugging Face ModelOutput): `.name` reads
    a field, `[i]` the i-th field that is not None (as ModelOutput's tuple view does)."""

    cls: type
    values: dict[str, Any]

    def item(self, index: Any) -> Any:
        if type(index) is str:
            return self.values.get(index, UNKNOWN)
        present = [v for v in self.values.values() if v is not None]
        if type(index) is int and -len(present) <= index < len(present):
            return present[index]
        if type(index) is slice:
            return tuple(present[index])
        return UNKNOWN


def wrap(found: Any, owner: Any) -> Any:
    """An attribute's value as the walk holds it: a function the owner's class defines is a
    method bound to the owner; a function found in a Python module or an instance's own
    dict is a plain function."""
    if type(found) is FunctionType and not is_a(owner, ModuleType):
        try:
            instance = object.__getattribute__(owner, "__dict__")
        except AttributeError:
            instance = {}
        own = instance.values() if type(instance) is dict else ()
        if not any(value is found for value in own):
            return Bound(found, owner)
    return from_real(found, "")


def safe_attribute(owner: Any, attr: str) -> Any:
    """`owner.attr` read without running the owner's code: instance and class dictionaries,
    a module's submodules, parameters and buffers; no property, no `__getattr__`."""
    if is_a(owner, ModuleType):
        return vars(owner).get(attr, UNKNOWN)
    if is_a(owner, nn.Module):
        d = owner.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            found = d.get(table, {})
            if attr in found:
                return found[attr]
    aliases = _static(type(owner), "attribute_map")  # a config's alias: hidden_size -> n_embd
    if type(aliases) is dict and type(aliases.get(attr)) is str:
        attr = aliases[attr]
    try:
        instance = object.__getattribute__(owner, "__dict__")
    except AttributeError:
        instance = {}
    if type(instance) is dict and attr in instance:
        return instance[attr]
    try:
        static = inspect.getattr_static(type(owner), attr)
    except AttributeError:
        return UNKNOWN
    if isinstance(static, FunctionType):
        return static  # a method: called as Bound
    if isinstance(static, (staticmethod, classmethod, property)) or hasattr(static, "__get__"):
        return UNKNOWN
    return static


def from_real(value: Any, name: str) -> Any:
    """A live value as the walk holds it."""
    kind = type(value)
    if issubclass(kind, torch.Tensor):
        if not torch_tensor_type(kind) or value.is_nested or value.layout != torch.strided:
            return UNKNOWN
        return Tensor(tuple(value.shape), value.dtype, name=name)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in (tuple, list) and len(value) <= 64:
        items = [from_real(v, "") for v in value]
        return tuple(items) if kind is tuple else items
    if kind is torch.Size:
        return tuple(value)
    return Obj(value)


def from_info(info: Any, step: Step | None, sources: tuple[Tensor, ...], call: Call | None,
               module: Any, item: int | None = None) -> Any:  # fmt: skip
    if isinstance(info, TensorInfo):
        dtype = getattr(torch, info.dtype, None)
        if not isinstance(dtype, torch.dtype):
            return UNKNOWN
        return Tensor(tuple(info.shape), dtype, step, sources, call, module, item)
    if isinstance(info, tuple):
        return tuple(from_info(v, step, sources, call, module, i) for i, v in enumerate(info))
    if isinstance(info, Struct):
        return UNKNOWN
    if info is None or isinstance(info, (bool, int, float, str)):
        return info
    return UNKNOWN


def tensors_in(args: Any, kwargs: dict[str, Any] | None = None) -> tuple[Tensor, ...]:
    found: list[Tensor] = []

    def visit(v: Any) -> None:
        if isinstance(v, Tensor):
            found.append(v)
        elif isinstance(v, (tuple, list)):
            for x in v:
                visit(x)

    visit(list(args))
    if kwargs:
        visit(list(kwargs.values()))
    return tuple(found)


def to_meta(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.meta()
    if isinstance(value, torch.Tensor) and value.device.type == "meta":
        return value
    if isinstance(value, Obj):
        inner = value.value
        if torch_tensor_type(type(inner)):
            return torch.empty(inner.shape, dtype=inner.dtype, device="meta")
        if type(inner) in (torch.dtype, torch.device, torch.memory_format, torch.layout):
            return inner
        raise NotMeta()
    if value is UNKNOWN:
        raise NotMeta()
    if isinstance(value, tuple):
        return tuple(to_meta(v) for v in value)
    if isinstance(value, list):
        return [to_meta(v) for v in value]
    if isinstance(value, (Method, Bound)):
        raise NotMeta()
    return value


class NotMeta(Exception):
    pass


def on_meta(function: Any, args: list[Any], kwargs: dict[str, Any], step: Step) -> Any:
    """A torch function on the meta tensors of known shapes; when an argument is not known
    (or the op cannot run on meta), a tensor of unknown shape made from its tensor args."""
    try:
        meta_args = [to_meta(a) for a in args]
        meta_kwargs = {k: to_meta(v) for k, v in kwargs.items()}
        meta_kwargs.pop("device", None)  # a factory's tensor is made on meta
    except Exception:
        meta_args = None
    if meta_args is None:
        out = UNKNOWN
    else:
        try:
            with torch.no_grad(), torch.device("meta"):
                out = function(*meta_args, **meta_kwargs)
        except Exception as error:
            note_failure(step, error)
            out = UNKNOWN
    made = retag(out, step, tensors_in(args, kwargs))
    if isinstance(made, Tensor) and getattr(function, "__name__", "") in VIEWS:
        made.view = True
    return made


# Ops whose result is a view (or reshape) of their first argument.
VIEWS = frozenset(
    [
        "view",
        "reshape",
        "flatten",
        "unflatten",
        "permute",
        "transpose",
        "squeeze",
        "unsqueeze",
        "contiguous",
        "view_as",
        "reshape_as",
        "movedim",
        "swapaxes",
        "t",
        "expand",
    ]
)


def retag(out: Any, step: Step | None, sources: tuple[Tensor, ...], module: Any = None,
           keep_history: bool = False) -> Any:  # fmt: skip
    """Results of a step as walk values: meta tensors become Tensors made by `step`."""
    if isinstance(out, Tensor):
        if keep_history:
            return Tensor(out.shape, out.dtype, step, (out,), None, module, known=out.known)
        return out
    if isinstance(out, torch.Tensor):
        if out.device.type != "meta":
            return UNKNOWN
        return Tensor(tuple(out.shape), out.dtype, step, sources, None, module)
    if isinstance(out, torch.Size):
        return tuple(out)
    if isinstance(out, (tuple, list)):
        items = [retag(o, step, sources, module, keep_history) for o in out]
        for i, item in enumerate(items):
            if isinstance(item, Tensor) and item.module is module and module is not None:
                item.item = i
        return tuple(items) if isinstance(out, tuple) else items
    if out is None or isinstance(out, (bool, int, float)):
        return out
    if isinstance(out, Fields):
        return Fields(out.cls, {k: retag(v, step, sources, module, keep_history)
                                for k, v in out.values.items()})  # fmt: skip
    if out is UNKNOWN and sources:  # a tensor made from these, its shape not worked out
        return Tensor((), sources[0].dtype, step, sources, None, module, known=False)
    return UNKNOWN


def layer_on_meta(module: nn.Module, args: list[Any], kwargs: dict[str, Any],
                  step: Step | None = None, stands_for: Any = None) -> Any:  # fmt: skip
    """A torch.nn layer's own forward on meta inputs, run on a shallow copy whose parameters
    and buffers are meta tensors of the same shapes: no hook runs, the module is untouched.
    The inputs are walk values or meta tensors; UNKNOWN when it cannot run."""
    if module._modules and _global_hooks():
        return UNKNOWN  # its children are called through __call__: process-wide hooks would run
    try:
        meta_args = [to_meta(a) for a in args]
        meta_kwargs = {k: to_meta(v) for k, v in kwargs.items()}
        twin = _meta_twin(module, 0)
    except Exception:
        return UNKNOWN
    try:
        with torch.no_grad():
            return type(module).forward(twin, *meta_args, **meta_kwargs)
    except Exception as error:
        layer = stands_for if stands_for is not None else module
        shapes = [tuple(a.shape) for a in meta_args if isinstance(a, torch.Tensor)]
        note_failure(step, _given(layer, shapes, error), layer)
        return UNKNOWN


class Failures:
    """Ops that fail on meta tensors whose shapes were all known: while a fix is checked,
    the place where the fixed pass would still fail."""

    active: list[tuple[Step | None, str, Any]] | None = None  # (where, message, layer)


def _given(layer: Any, shapes: list[tuple[int, ...]], error: BaseException) -> BaseException:
    """A layer's failure in words: what it is and what it was given (`Linear(in_features=64,
    out_features=10, bias=True) gets (2, 50)`); torch's own message for anything else."""
    try:
        made = f"{type(layer).__name__}({layer.extra_repr()})" if is_library(type(layer)) else ""
    except Exception:
        made = type(layer).__name__
    if made and shapes:
        given = ", ".join(_shape_text(s) for s in shapes)
        return RuntimeError(f"{made} gets {given}")
    return error


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def note_failure(step: Step | None, error: BaseException, module: Any = None) -> None:
    found = Failures.active
    if found is None or isinstance(error, (NotImplementedError, NotMeta)):
        return
    text = str(error).strip().splitlines()
    message = text[0] if text else type(error).__name__
    if "meta" in message.lower():  # a kernel missing for meta tensors, not a shape error
        return
    found.append((step, message, module))


def _global_hooks() -> bool:
    from torch.nn.modules import module as torch_module

    tables = [v for k, v in vars(torch_module).items() if k.startswith("_global_") and "hook" in k]
    return any(len(t) for t in tables if hasattr(t, "__len__"))


def _meta_twin(module: nn.Module, depth: int) -> nn.Module:
    if depth > 8 or not is_library(type(module)):
        raise NotMeta()
    twin = copy.copy(module)
    d = twin.__dict__

    def meta(t: Any) -> Any:
        if t is None:
            return None
        if not torch_tensor_type(type(t)):
            raise NotMeta()
        out = torch.empty(t.shape, dtype=t.dtype, device="meta")
        return nn.Parameter(out, requires_grad=False) if isinstance(t, nn.Parameter) else out

    d["_parameters"] = {k: meta(v) for k, v in module._parameters.items()}
    d["_buffers"] = {k: meta(v) for k, v in module._buffers.items()}
    d["_modules"] = {k: _meta_twin(v, depth + 1) if v is not None else None
                     for k, v in module._modules.items()}  # fmt: skip
    if "_flat_weights" in d:  # recurrent layers read their weights from this list
        d["_flat_weights"] = [d["_parameters"].get(n) for n in d["_flat_weights_names"]]
    for name, table in list(d.items()):
        if "hooks" in name and hasattr(table, "clear"):
            d[name] = type(table)()  # the twin runs none of the module's hooks
    return twin
