"""The devices a worker can run the model on, named as the API names them: `cpu`, `gpu:N` (torch `cuda:N`)."""

from __future__ import annotations

import functools
import platform

import psutil
import torch

from workers.registry import DeviceInfo

_GIB = 1024**3


def _gib(value: float) -> float:
    return round(value / _GIB, 2)


@functools.cache
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def public_name(device: torch.device) -> str:
    """`cpu` or `gpu:N`: the name clients see in /v1/devices/status and send to /v1/devices/switch."""
    return "cpu" if device.type == "cpu" else f"gpu:{device.index or 0}"


def _gpu_memory(index: int, in_use: bool) -> tuple[int, int | None]:
    """(total, free) bytes of a GPU. On the GPU the model is on, CUDA's own count; on the others NVML's, when
    it is installed (asking CUDA would create a context there: hundreds of MB taken from the GPU we report)."""
    if in_use:
        free, total = torch.cuda.mem_get_info(index)
        return total, free
    total = torch.cuda.get_device_properties(index).total_memory
    try:
        return total, total - torch.cuda.device_memory_used(index)
    except Exception:  # no pynvml, or NVML failing: the free memory is unknown, which is not an error
        return total, None


def _describe(device: torch.device, *, in_use: bool = False) -> DeviceInfo:
    """The device with its memory right now (GPU: see `_gpu_memory`; CPU: the OS's available memory)."""
    if device.type == "cuda":
        index = device.index or 0
        total, free = _gpu_memory(index, in_use)
        return DeviceInfo(
            device=public_name(device),
            device_type="gpu",
            device_id=index,
            name=torch.cuda.get_device_name(index),
            backend=f"cuda {torch.version.cuda}",
            memory_total_gb=_gib(total),
            memory_free_gb=None if free is None else _gib(free),
        )
    memory = psutil.virtual_memory()
    return DeviceInfo(
        device="cpu",
        device_type="cpu",
        name=_cpu_name(),
        backend="cpu",
        memory_total_gb=_gib(memory.total),
        memory_free_gb=_gib(memory.available),
    )


def available_devices(current: torch.device) -> list[DeviceInfo]:
    """Every device of this machine the model could run on, the CPU first; `current` is the model's."""
    gpus = [torch.device("cuda", i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    in_use = public_name(current)
    return [_describe(torch.device("cpu")), *(_describe(gpu, in_use=public_name(gpu) == in_use) for gpu in gpus)]


def torch_device(name: str) -> torch.device:
    """The torch device of a public name already checked by `workers.registry.choose_device`."""
    return torch.device("cpu") if name == "cpu" else torch.device("cuda", int(name.partition(":")[2]))
