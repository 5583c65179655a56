"""Paper-scale studies: expand a file of change_labels.py commands (runs.md's format) into runs,
check them all without weights, run them on this machine or a SLURM cluster through submitit, and
report which are done (`python -m icl.sweep`; see README.md, "Studies").

  study.py   the file -> the selected, substituted, de-duplicated runs and their directories
  plan.py    validating every run without weights; prompts, tokens and time to go
  jobs.py    one submitit job per run; the local and SLURM launchers
  status.py  the sweep's record under the root and each run's state
"""
