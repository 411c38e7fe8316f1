"""Workflow and task definitions: their shape and defaults, the task types, and Conductor's
validation rules. The gateway validates what it registers with them and the decider what it
starts, so both answer with the same errors.
"""
