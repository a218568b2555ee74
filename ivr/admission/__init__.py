"""Who gets a line, a seat or a callback, and what they are told while they wait
(issue 23).

- ``lines``: the trunk lines of each PBX (``queue/lines.yaml``), what the
  dialplan and AMI say of them, and the figures staff see. Pure.
- ``rates``: decayed rate meters (service per seat, abandonment θ, arrivals
  with their trend) and the stage sums the predictors use. Pure.
- ``estimate``: the per-queue ``QueueObserver`` and the wait predictors: the
  engine's own and the three baselines it is scored against (Asterisk's
  hold-time average, the head-of-line wait, the plain queue length). Pure.
- ``accuracy``: scoring estimates against the waits callers had (RRMSE, share
  within ±25 % or ±60 s), shaped like the drill report's
  ``wait_estimate_accuracy``. Pure.
- ``announce``: what a waiting citizen is told ("您前面还有12位，预计等待约3分钟"),
  rounded so it is not a promise the engine cannot keep, as pieces to play
  from number recordings. Pure.
- ``speech``: the recordings those pieces are played from.
"""
