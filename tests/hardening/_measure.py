"""Run ``python ARGS`` and write its peak resident memory (kB) to the file ``argv[1]``.

A child forked straight from pytest inherits the high-water mark of pytest's own
memory (TensorFlow is loaded there), which survives exec; forked from this small
process, the command's ``ru_maxrss`` is its own.
"""

import resource
import signal
import subprocess
import sys

code = subprocess.call([sys.executable, *sys.argv[2:]])
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(128 + signal.Signals(-code) if code < 0 else code)
