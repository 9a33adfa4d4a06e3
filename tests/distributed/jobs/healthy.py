"""A healthy DDP job: 3 steps, once per mode named on the command line, each from the same seed.

Modes: plain, trace (a look at model.module before each step), explain (each step's forward in
`with inspector.explain():`), attach (a session on the DDP model for the whole loop). Each mode
prints the digest of the final weights and of the whole state (weights and buffers).
"""

import sys
import time

import torch
from jobkit import SmallCNN, batch, finish, log, setup, state_digest, weights_digest
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import inspector

rank, world = setup()
for mode in sys.argv[1:] or ["plain", "trace", "explain", "attach"]:
    start = time.perf_counter()
    torch.manual_seed(0)
    model = DDP(SmallCNN())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    crit = nn.CrossEntropyLoss()
    session = inspector.attach(model) if mode == "attach" else None
    for step in range(3):
        x, y = batch(rank, step)
        opt.zero_grad(set_to_none=True)
        if mode == "trace":
            t = inspector.trace(model.module, x)
            log(rank, f"trace {mode} step {step}: {len(t.calls)} calls, error {t.error!r}")
        if mode == "explain":
            with inspector.explain():
                loss = crit(model(x), y)
        else:
            loss = crit(model(x), y)
        loss.backward()
        opt.step()
    if session is not None:
        log(rank, f"session {mode}: {len(session.calls)} calls")
        session.detach()
    log(rank, f"weights {mode} {weights_digest(model.module)}")
    log(rank, f"state {mode} {state_digest(model.module)}")
    log(rank, f"seconds {mode} {time.perf_counter() - start:.3f}")
finish()
