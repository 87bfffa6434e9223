"""Restarts retinanet-kernel through jupyter_client's KernelManager, as notebook frontends do.

Usage: jupyter_client_restarts.py KERNEL_NAME N
Each round: restart_kernel(now=False) (a shutdown_request, then a new process on the same ports),
idle, while a cell runs, or now=True (killed, no request) in turn; then wait_for_ready and an
execute that must answer. Prints one line per round and "restarts: OK/N" at the end.
"""
import sys
import time

from jupyter_client.manager import KernelManager

name, n = sys.argv[1], int(sys.argv[2])
km = KernelManager(kernel_name=name)
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
ok = 0
for i in range(n):
    mode = ("idle", "running", "now")[i % 3]
    t0 = time.time()
    try:
        if mode == "running":
            kc.execute("while (true) {}")
            time.sleep(0.3)
        km.restart_kernel(now=(mode == "now"))
        kc.wait_for_ready(timeout=30)
        reply = kc.execute_interactive(f"{i} + 1", timeout=30, output_hook=lambda m: None)
        good = reply["content"]["status"] == "ok"
    except Exception as e:  # noqa: BLE001 - a round that fails is reported, the next one runs
        print(f"round {i} ({mode}): {type(e).__name__}: {e}", flush=True)
        good = False
    ok += good
    print(f"round {i} ({mode}): {'ok' if good else 'FAILED'} in {time.time() - t0:.2f} s", flush=True)
kc.stop_channels()
km.shutdown_kernel(now=False)
print(f"restarts: {ok}/{n}", flush=True)
