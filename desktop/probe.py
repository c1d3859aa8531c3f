"""Print, as one JSON line, the device and precision training would use here.

Run as a child process by the Train page, so the window never imports torch.
"""
from __future__ import annotations

import json


def main() -> int:
    from doctune.core.train.device import choose_placement

    placement = choose_placement()
    print(json.dumps({"device": placement.device, "dtype": placement.dtype}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
