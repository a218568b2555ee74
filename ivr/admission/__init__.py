"""Who gets a line, a seat or a callback (issue 23).

- ``lines``: the trunk lines of each PBX (``queue/lines.yaml``), what the
  dialplan and AMI say of them, and the figures staff see. Pure.
"""
