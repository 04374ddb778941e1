"""An operator's setup module that never returns, and ignores SIGTERM: a worker that hangs before its run begins
(a stuck file system, an import that deadlocks). tests/test_run_bounds.py names it in ARCHS_WORKER_SETUP."""

import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("stuck_setup: hanging before the run begins, ignoring SIGTERM", flush=True)  # the run's worker.log
while True:
    time.sleep(1)
