"""A process that records numbered events through recorder.client, for the crash tests.

    python client_child.py URL KEY SPILL_DIR START COUNT [--loop]

Records events "m<START>".."m<START+COUNT-1>" in chunks of 50 and prints
"flushed <n> <acked>" after each completed flush(), so the parent knows which events
were recorded before the last completed flush. With --loop it keeps recording after
COUNT (numbers go on) until it is killed. Runs without Django on purpose.
"""

import sys

from recorder.client import Recorder


def main() -> None:
    url, key, spill_dir, start, count = sys.argv[1:6]
    loop = "--loop" in sys.argv
    start, count = int(start), int(count)
    rec = Recorder(url, key, spill_dir=spill_dir, timeout=2.0, app_version="child")
    i = start
    while loop or i < start + count:
        for _ in range(50):
            rec.record("log", {"i": i}, message=f"m{i}")
            i += 1
        acked = rec.flush(timeout=30)
        print(f"flushed {i} {int(acked)}", flush=True)
    print("done", flush=True)
    rec.close()


if __name__ == "__main__":
    main()
