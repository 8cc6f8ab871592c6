"""Moving a loaded model between devices tensor by tensor, with an exact way back.

`module.to(device, dtype)` casts buffers too (the rotary tables of a bf16 model would lose their fp32) and,
moved first and cast after, briefly needs the fp32 model on a bf16 GPU. Here each floating-point parameter is
copied straight to its target device and dtype, buffers change device only, and the placement taken before
the move can be restored exactly when the move fails halfway (out of memory on the target).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class Placement:
    """Where every parameter and buffer of a model is, and in which dtype."""

    parameters: list[tuple[torch.nn.Parameter, torch.device, torch.dtype]]
    buffers: list[tuple[torch.nn.Module, str, torch.device]]

    @classmethod
    def of(cls, model: torch.nn.Module) -> Placement:
        return cls(
            parameters=[(p, p.device, p.dtype) for p in model.parameters()],
            buffers=[
                (module, name, buffer.device)
                for module in model.modules()
                for name, buffer in module._buffers.items()
                if buffer is not None
            ],
        )

    def restore(self) -> None:
        for parameter, device, dtype in self.parameters:
            parameter.data = parameter.data.to(device=device, dtype=dtype)
        for module, name, device in self.buffers:
            buffer = module._buffers[name]
            assert buffer is not None, "only buffers that were set are recorded"
            module._buffers[name] = buffer.to(device)


def move_model(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Floating-point parameters to (`device`, `dtype`), everything else to `device`, one tensor at a time."""
    for parameter in model.parameters():
        target = dtype if parameter.is_floating_point() else parameter.dtype
        parameter.data = parameter.data.to(device=device, dtype=target)
    for module in model.modules():
        for name, buffer in module._buffers.items():
            if buffer is not None:
                module._buffers[name] = buffer.to(device)
