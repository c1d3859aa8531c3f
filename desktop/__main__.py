"""``python -m doctune.desktop`` opens the window; the packaged app's entry point too.

In a PyInstaller build there is no separate Python, so the same binary also runs
the CLI for job processes (``--cli …``) and the device probe (``--probe-device``).
"""
import sys


def main() -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # a packaged app's model processes (core.isolation) start through here
    if len(sys.argv) > 1 and sys.argv[1] == "--cli":
        from doctune.core.cli import main as cli_main

        return cli_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--probe-device":
        from doctune.desktop.probe import main as probe_main

        return probe_main()
    from doctune.core.cli import main as cli_main

    return cli_main(["gui", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
