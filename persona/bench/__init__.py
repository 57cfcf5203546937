"""Benchmarks: the PRELUDE edit-learning environment (tasks, corpus, simulated users, metrics).

``env`` holds the two tasks and their document sources, ``atoms`` the executable preference
atoms that make up each source's latent preference, ``users`` the simulated users that edit
the agent's answers, and ``metrics`` the word-level edit distance PRELUDE reports as cost.
"""
