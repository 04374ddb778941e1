"""Process-wide registries of archs.runs, kept apart from the code that uses them.

A Streamlit server reloads a module whose file changed. If the registry of live jobs lived in
archs/runs.py, a reload would empty it while the jobs' threads trained on, and every running run would
read as "interrupted". This module holds data only, so a reload of runs.py finds the same objects.
"""

import threading

LIVE_JOBS: dict = {}             # run folder (resolved path) -> job of this process
LIVE_JOBS_LOCK = threading.RLock()
MANAGERS: dict = {}              # runs folder (resolved path) -> JobManager
MANAGERS_LOCK = threading.Lock()
