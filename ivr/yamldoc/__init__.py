"""The one home for reading the YAML files people edit (flows, the contingency
plan, seats, queues, announcement sets, the callback policy, drill profiles,
prompt texts):

    bounded.py      compose a staff file safely (no anchors, bounded size and depth)
    problems.py     Problem (``file:line:col``, Chinese first), Problems, node helpers
    schema.py       Reader: one mapping read against a schema, every problem at once
    messages_zh.py  the Chinese in front of each English check message
"""
