"""The contributions view: the top units of the selected layer toward the output.

They are computed with the model (a backward pass or, for integrated gradients, many) in a
worker thread, never in the UI's; the view shows each step as it comes.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import RenderableType
from rich.text import Text
from textual.message import Message
from textual.reactive import var

from inspector.tui.controller import Controller
from inspector.tui.panels import Shows


@dataclass(frozen=True)
class ContribRequest:
    """Explain call `index` of `layer` toward output `target` (None: the predicted class)."""

    layer: str
    index: int
    name: str
    method: str  # "grad_x_act" | "integrated_gradients" | "linear"
    target: int | None = None


class ContribPanel(Shows):
    """Shows `body`; given a `request`, computes it in a worker and shows its progress."""

    body: var[RenderableType] = var(Text(""), init=False)
    request: var[ContribRequest | None] = var(None, always_update=True, init=False)

    class Computed(Message, bubble=False):
        """A worker's progress, result or failure."""

        def __init__(self, job: int, body: RenderableType, style: str = "yellow") -> None:
            super().__init__()
            self.job = job  # which computation: a replaced one's late words are dropped
            self.body = body
            self.style = style

    def __init__(self, controller: Controller, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.controller = controller
        self._job = 0

    def watch_body(self, body: RenderableType) -> None:
        self.put(body)

    def watch_request(self, request: ContribRequest | None) -> None:
        if request is None:
            return
        self._job += 1
        job, controller, method = self._job, self.controller, request.method
        self.body = Text(f"computing {method} for {request.name}…", style="yellow")

        def progress(done: int, total: int) -> None:
            self.post_message(self.Computed(job, f"{method}: step {done} of {total}"))

        def work() -> None:
            try:
                body = controller.contributions(
                    request.layer, request.index, method, progress, request.target
                )
            except Exception as exc:  # a layer it cannot explain: say so, keep the app
                self.post_message(self.Computed(job, f"{type(exc).__name__}: {exc}", "red"))
                return
            self.post_message(self.Computed(job, body, "dim"))

        self.run_worker(work, thread=True, exclusive=True, group="contributions")

    def on_contrib_panel_computed(self, message: Computed) -> None:
        if message.job == self._job:
            body = message.body
            self.body = Text(body, style=message.style) if isinstance(body, str) else body
