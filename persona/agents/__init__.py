"""Agents: chat-model backends, prompt conditioning, the Runnable wrapper and the assistant.

Submodules import their heavy dependencies lazily; importing this package costs nothing.
"""
