"""A frontend that starts a kernel through jupyter_client (which sets JPY_PARENT_PID), prints the
kernel's pid, and then waits to be killed without shutting the kernel down.

Usage: orphan_parent.py KERNEL_NAME
"""
import sys
import time

from jupyter_client.manager import KernelManager

km = KernelManager(kernel_name=sys.argv[1])
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
print(f"kernel pid {km.provisioner.process.pid}", flush=True)
time.sleep(600)
