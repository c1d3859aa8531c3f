"""Print, as one JSON line, the device and precision training would use here, and the memory there is.

Run as a child process by the Train page, so the window never imports torch.
"""
from __future__ import annotations

import json


def memory_gb() -> dict[str, float | None]:
    """This computer's memory (RAM) and, with an NVIDIA GPU, its video memory, in GB."""
    import psutil
    import torch

    vram = None
    if torch.cuda.is_available():
        vram = round(torch.cuda.get_device_properties(0).total_memory / 1e9, 1)
    return {"ram_gb": round(psutil.virtual_memory().total / 1e9, 1), "vram_gb": vram}


def main() -> int:
    from doctune.core.train.device import choose_placement

    placement = choose_placement()
    print(json.dumps({"device": placement.device, "dtype": placement.dtype, **memory_gb()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
