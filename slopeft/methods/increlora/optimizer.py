"""AdamW with a learning-rate factor and fresh optimiser state per rank component: IncreLoRA's
restarted warmup for the components it adds."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ComponentScaledAdamW(torch.optim.Optimizer):
    """AdamW with a learning-rate factor and fresh optimiser state per rank component.

    ``scales`` maps each parameter to a function returning a tensor broadcastable to it, one factor
    per rank component: the component's AdamW update (Adam step and decoupled weight decay) is the
    trainer's learning rate times that factor. A component starts training when its factor turns
    positive, and only then does its Adam state begin: its moments stay zero and its own step
    counter (the bias correction) stays at 0 until it starts. That is what the authors' code gets by
    adding every new group of components to the optimiser as a fresh parameter group; one Adam
    state per pre-allocated tensor would instead apply the tensor's step counter (say 500) to a
    component's first, near-zero moments, and its first updates would be 2–4× too large.
    """

    def __init__(
        self,
        params,
        lr: float,
        scales: dict[nn.Parameter, Callable[[], torch.Tensor]],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        self.scales = scales

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.to(torch.float32)
                factor = self.scales[p]().to(torch.float32)
                training = (factor > 0).to(torch.float32)
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    state["component_steps"] = torch.zeros_like(factor)
                steps, m, v = state["component_steps"], state["exp_avg"], state["exp_avg_sq"]
                steps.add_(1).mul_(training)  # a component not (yet) training keeps a fresh state
                m.mul_(beta1).add_(grad, alpha=1 - beta1).mul_(training)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2).mul_(training)
                safe = steps.clamp(min=1)
                m_hat = m / (1 - beta1**safe)
                v_hat = v / (1 - beta2**safe)
                step_size = lr * factor * training
                update = m_hat / (v_hat.sqrt() + eps) + decay * p.to(torch.float32)
                p.sub_((step_size * update).to(p.dtype))
        return loss
