"""The tests' shared tools; test modules import from here, never from one another.

- stack.py: the compose stack's services as local processes (faults, speed)
- docker_stack.py: the compose stack in a real Docker engine, and the stand-in images
- services.py: PostgreSQL's address, and skip-or-fail when a service is missing
- examples.py: the examples run as a learner runs them, and what run.py logs
- docs.py: what the READMEs and docs/ show (expected output, patterns, commands)
- faults.py: the fault tests' entry points and their one clear message
"""
